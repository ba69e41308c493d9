// libFuzzer target: RecordDecoder::Decode (sources/record_decoder.h) for
// every envelope (freshet, json append, json upsert, json debezium), and
// what declarative views (views/declarative_projection.h) make of each
// decoded record: ApplyRecord + TakePending over latest views with a column
// of every SQL type read from the value, $key, $key/ptr and $header.x
// (Debezium's Decimal/Date/Timestamp encodings, base64, uuid, dates,
// jsonb), `where` predicates, event_types/delete_on, and for the event
// streams an aggregate with a time bucket.
//
// Input layout: byte 0 selects, the rest is "<key>\n<value>" (split at the
// first '\n'; no '\n': all of it is the value, the key is empty).
//   bits 0-1  envelope: 0 freshet, 1 json append, 2 json upsert, 3 json debezium
//   bit  2    the key is null          bit 3  the value is null (a tombstone)
//   bits 4-5  source variant (json envelopes): 0 plain, 1 type "/type" and
//             timestamp "/ts", 2 type "$header.x", 3 type "$key/type"
//   bit  6    parse keys as JSON       bit 7  the record has header x = the key bytes
// tests/fuzz/corpus/record_decoder/ holds seeds; scripts/fuzz runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "sources/record_decoder.h"
#include "sources/source_spec.h"
#include "views/declarative_projection.h"
#include "views/view_spec.h"

namespace freshet {
namespace {

constexpr SourceEnvelope kEnvelopes[] = {SourceEnvelope::kFreshet, SourceEnvelope::kAppend,
                                         SourceEnvelope::kUpsert, SourceEnvelope::kDebezium};
constexpr const char* kEnvelopeNames[] = {"freshet", "append", "upsert", "debezium"};
constexpr const char* kTypes[] = {"text",  "bigint",  "double", "boolean", "timestamptz",
                                  "jsonb", "numeric", "date",   "uuid"};

// The "source" object of one (envelope, variant).
nlohmann::ordered_json SourceJson(int envelope, int variant) {
  nlohmann::ordered_json source = nlohmann::ordered_json::object();
  if (envelope == 0) return source;  // freshet: no type/timestamp
  source["topic"] = "fuzz.topic";
  source["format"] = "json";
  source["envelope"] = kEnvelopeNames[envelope];
  switch (variant) {
    case 1:
      source["type"] = "/type", source["timestamp"] = "/ts";
      break;
    case 2:
      source["type"] = "$header.x";
      break;
    case 3:
      source["type"] = "$key/type";
      break;
    default:
      break;
  }
  return source;
}

// View definitions reading `source`: every one that ParseViewSpecs accepts
// for its envelope.
nlohmann::ordered_json Definitions(int envelope, const nlohmann::ordered_json& source) {
  using J = nlohmann::ordered_json;
  const bool upsert = envelope == 2, changelog = envelope >= 2;
  // An upsert view's key must read the Kafka key; the others key rows by
  // $partition so that every record reaches the columns.
  const J row_key = upsert ? J("$key") : J("$partition");
  J defs = J::array();
  auto view = [&](const std::string& name, J body) {
    body["name"] = name;
    if (!source.empty()) body["source"] = source;
    defs.push_back(std::move(body));
  };
  // One small latest view per (SQL type, reference): a bad value in one
  // column does not hide the conversions of the others.
  const char* refs[][2] = {{"v", "/v"}, {"k", "$key"}, {"h", "$header.x"}, {"p", "$key/v"}, {"n", "/o/n/0"}};
  for (const char* type : kTypes)
    for (const auto& ref : refs)
      view(std::string("c_") + ref[0] + "_" + type,
           J{{"kind", "latest"},
             {"key", {{"id", row_key}}},
             {"columns", {{"x", {{"from", ref[1]}, {"type", type}}}}}});
  // Typed keys and the envelope fields.
  view("keyed", J{{"kind", "latest"},
                  {"key", upsert      ? J{{"id", {{"from", "$key/id"}, {"type", "bigint"}}}}
                          : changelog ? J{{"id", {{"from", "/id"}, {"type", "bigint"}}}}
                                      : J{{"id", {{"from", "/id"}, {"type", "bigint"}}},
                                          {"u", {{"from", "/u"}, {"type", "uuid"}}}}},
                  {"columns",
                   {{"ty", "$type"},
                    {"ts", "$ts"},
                    {"eid", "$id"},
                    {"topic", "$topic"},
                    {"part", "$partition"},
                    {"off", "$offset"},
                    {"kk", "$key"},
                    {"d", {{"from", "/d"}, {"type", "date"}}},
                    {"t", {{"from", "/t"}, {"type", "timestamptz"}}}}},
                  {"event_types", {"A", "B", "c", "u", "r", "upsert"}},
                  {"delete_on", {"D"}}});
  // `where` in each of its comparisons: number, text, JSON values.
  view("w_num", J{{"kind", "latest"},
                  {"key", {{"id", row_key}}},
                  {"columns", {{"v", "/v"}}},
                  {"where", {{"field", "/w"}, {"op", "<="}, {"value", 10.5}}}});
  view("w_text", J{{"kind", "latest"},
                   {"key", {{"id", row_key}}},
                   {"columns", {{"v", "/v"}}},
                   {"where", {{"field", "$type"}, {"op", ">"}, {"value", "B"}}}});
  view("w_json",
       J{{"kind", "latest"},
         {"key", {{"id", row_key}}},
         {"columns", {{"v", "/v"}}},
         {"where", {{"field", "/w"}, {"op", "!="}, {"value", {{"a", J::array({1, nullptr, "x"})}}}}}});
  view("w_key", J{{"kind", "latest"},
                  {"key", {{"id", row_key}}},
                  {"columns", {{"v", "/v"}}},
                  {"where", {{"field", "$key"}, {"op", "="}, {"value", J::array({true})}}}});
  view("w_header", J{{"kind", "latest"},
                     {"key", {{"id", row_key}}},
                     {"columns", {{"v", "/v"}}},
                     {"where", {{"field", "$header.x"}, {"op", "!="}, {"value", nullptr}}}});
  if (!changelog) {
    view("agg",
         J{{"kind", "aggregate"},
           {"group_by", {{"ty", "$type"}, {"hour", {{"from", "$ts"}, {"bucket", "hour"}}}, {"g", "/g"}}},
           {"aggregates",
            {{"c", {{"fn", "count"}}},
             {"s", {{"fn", "sum"}, {"from", "/v"}}},
             {"sb", {{"fn", "sum"}, {"from", "/v"}, {"type", "bigint"}}},
             {"mn", {{"fn", "min"}, {"from", "/v"}, {"type", "bigint"}}},
             {"mx", {{"fn", "max"}, {"from", "$key/v"}}},
             {"a", {{"fn", "avg"}, {"from", "/w"}}}}},
           {"where", {{"field", "/w"}, {"op", "!="}, {"value", 3}}}});
  }
  return defs;
}

struct Target {
  std::unique_ptr<RecordDecoder> decoder[2];  // [parse_key]
  std::vector<std::unique_ptr<DeclarativeProjection>> views;
};

struct Targets {
  Target target[4][4];  // [envelope][variant]
  Targets() {
    for (int e = 0; e < 4; ++e)
      for (int v = 0; v < 4; ++v) {
        nlohmann::ordered_json source = SourceJson(e, v);
        auto spec = ParseSourceSpec(source.empty() ? nullptr : &source, "source");
        if (!spec.ok() || spec->envelope != kEnvelopes[e]) Die("source", spec.status().message());
        Target& t = target[e][v];
        t.decoder[0] = std::make_unique<RecordDecoder>(*spec, false);
        t.decoder[1] = std::make_unique<RecordDecoder>(*spec, true);
        nlohmann::ordered_json defs = Definitions(e, source);
        // Parse each alone, so that one refused definition names itself.
        for (const auto& def : defs) {
          auto views = ParseViewSpecs(nlohmann::ordered_json::array({def}), "views");
          if (!views.ok()) Die(def["name"].get<std::string>(), views.status().message());
          t.views.push_back(std::make_unique<DeclarativeProjection>(views->front()));
        }
      }
  }
  [[noreturn]] static void Die(const std::string& what, const std::string& why) {
    fprintf(stderr, "record_decoder_fuzz: bad built-in definition %s: %s\n", what.c_str(), why.c_str());
    abort();
  }
};

}  // namespace
}  // namespace freshet

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet;
  static Targets* targets = new Targets();  // built once; never freed (not a leak per input)
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  const int envelope = selector & 3, variant = (selector >> 4) & 3;
  const bool null_key = selector & 4, null_value = selector & 8, parse_key = selector & 64,
             header = selector & 128;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view key, value = rest;
  if (size_t nl = rest.find('\n'); nl != std::string_view::npos) {
    key = rest.substr(0, nl);
    value = rest.substr(nl + 1);
  }
  // Copies: exact-size heap buffers, so that ASan sees any read past the
  // end (simdjson pads its own copy).
  std::string key_copy(key), value_copy(value);

  RawRecord raw;
  raw.topic = "fuzz.topic";
  raw.partition = 3;
  raw.offset = 42;
  raw.timestamp_ms = 1700000000000;
  if (!null_key) raw.key = std::string_view(key_copy);
  if (!null_value) raw.value = std::string_view(value_copy);
  if (header) raw.headers.push_back({"x", key_copy});

  Target& target = targets->target[envelope][variant];
  SourceRecord record;
  Status st = target.decoder[parse_key ? 1 : 0]->Decode(raw, &record);
  if (!st.ok()) {
    if (st.message().empty()) abort();  // every refusal says why
    return 0;
  }
  if (record.change == SourceRecord::Change::kSkip) return 0;
  for (auto& view : target.views) {
    Status applied = view->ApplyRecord(record);
    if (!applied.ok() && applied.message().empty()) abort();
    std::vector<RowWrite> rows = view->TakePending();
    for (const RowWrite& row : rows) {
      // Invariants the sinks rely on: a key text per key column, a value
      // per column unless deleted.
      if (row.key.size() != view->table().key_columns.size()) abort();
      if (!row.deleted && row.values.size() != view->table().value_columns.size()) abort();
    }
  }
  return 0;
}
