// libFuzzer target: the view-definition parser, ParseViewSpecs
// (views/view_spec.h), with ParseSourceSpec and ParseFieldRef
// (sources/source_spec.h), on arbitrary JSON text. Input that is not JSON
// is skipped (nlohmann, allow_exceptions=false). The input goes to
// ParseViewSpecs as it is and, when it is an object, as a one-definition
// array; to ParseSourceSpec as it is and its "source" member; a string to
// ParseFieldRef. Every accepted definition then builds a
// DeclarativeProjection and folds a fixed sample record of its envelope
// into it (ApplyRecord + TakePending), so that odd but accepted definitions
// meet the projection code too. Nothing may throw: the parsers report
// errors as a Status.
// Byte mutations seldom turn a JSON string into a number: each input is
// also parsed once more with one of its values (picked by a hash of the
// input) replaced by a value of another type, which tries every field with
// every type over a run.
// tests/fuzz/corpus/view_spec/ holds seeds; scripts/fuzz runs it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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

constexpr std::string_view kData =
    R"({"id": 7, "v": 12.5, "w": 3, "s": "x", "g": "a", "u": "123e4567-e89b-12d3-a456-426614174000",)"
    R"( "d": "2024-02-29", "t": 1700000000000, "o": {"n": [1, "two", null]}, "type": "A", "ts": 1700000000000})";

// Sample records of each envelope: [0] an event or a new row, [1] a
// tombstone or a delete.
std::string FreshetEvent() {
  return R"({"type": "A", "id": "e1", "ts": 1700000000000, "data": )" + std::string(kData) + "}";
}
std::string DebeziumChange() {
  return R"({"schema": {"type": "struct", "fields": [{"type": "struct", "field": "after", "fields": [)"
         R"({"type": "bytes", "field": "v", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},)"
         R"({"type": "int32", "field": "d", "name": "io.debezium.time.Date"},)"
         R"({"type": "int64", "field": "t", "name": "io.debezium.time.MicroTimestamp"}]}]},)"
         R"( "payload": {"before": null, "after": {"id": 7, "v": "AeJA", "w": 3, "d": 19000, "t": 1700000000123456,)"
         R"( "u": "123e4567-e89b-12d3-a456-426614174000", "s": "x", "o": {"n": [1]}}, "op": "c", "ts_ms": 1}})";
}

RawRecord Record(const std::string* key, const std::string* value) {
  RawRecord raw;
  raw.topic = "fuzz.topic";
  raw.partition = 1;
  raw.offset = 9;
  raw.timestamp_ms = 1700000000000;
  if (key) raw.key = std::string_view(*key);
  if (value) raw.value = std::string_view(*value);
  raw.headers.push_back({"x", "hdr"});
  return raw;
}

void Exercise(const ViewSpec& spec) {
  static const std::string freshet = FreshetEvent(), plain(kData), debezium = DebeziumChange(),
                           debezium_delete = R"({"before": {"id": 7}, "after": null, "op": "d", "ts_ms": 2})",
                           key = R"({"id": 7, "v": 2, "type": "K"})";
  DeclarativeProjection projection(spec);
  (void)projection.table();
  RecordDecoder decoder(spec.source, ReadsKeyJson(spec));
  const std::string* values[2] = {nullptr, nullptr};
  switch (spec.source.envelope) {
    case SourceEnvelope::kFreshet:
      values[0] = &freshet;
      break;
    case SourceEnvelope::kAppend:
      values[0] = &plain;
      break;
    case SourceEnvelope::kUpsert:
      values[0] = &plain;
      break;  // [1]: the tombstone (nullptr)
    case SourceEnvelope::kDebezium:
      values[0] = &debezium, values[1] = &debezium_delete;
      break;
  }
  for (int i = 0; i < 2; ++i) {
    if (i == 1 && !spec.source.changelog()) break;
    RawRecord raw = Record(&key, values[i]);
    SourceRecord record;
    if (!decoder.Decode(raw, &record).ok() || record.change == SourceRecord::Change::kSkip) continue;
    (void)projection.ApplyRecord(record);
    for (const RowWrite& row : projection.TakePending())
      if (row.key.size() != projection.table().key_columns.size()) abort();
  }
}

void Parse(const nlohmann::ordered_json& definitions) {
  auto specs = ParseViewSpecs(definitions, "views.definitions");
  if (!specs.ok()) {
    if (specs.status().message().empty()) abort();  // every refusal says why
    return;
  }
  for (const ViewSpec& spec : *specs) {
    if (!IsValidIdentifier(spec.name) || spec.version.empty()) abort();
    Exercise(spec);
  }
}

// Every value under `j` (not `j` itself), depth first.
void Values(nlohmann::ordered_json& j, std::vector<nlohmann::ordered_json*>* out) {
  if (!j.is_structured()) return;
  for (auto& child : j) {
    out->push_back(&child);
    Values(child, out);
  }
}

// `doc` with one value, chosen by `hash`, of another type.
bool Confuse(nlohmann::ordered_json* doc, uint64_t hash) {
  using J = nlohmann::ordered_json;
  std::vector<J*> values;
  Values(*doc, &values);
  if (values.empty()) return false;
  static const J kOthers[] = {J(5),
                              J(-1.5),
                              J(true),
                              J(nullptr),
                              J("x"),
                              J(""),
                              J::array(),
                              J::object(),
                              J(1e300),
                              J(static_cast<uint64_t>(-1)),
                              J(std::string("/a\0b", 4)),
                              J::array({"a", 1})};
  J* target = values[hash % values.size()];
  const J& other = kOthers[(hash >> 32) % std::size(kOthers)];
  if (target->type() == other.type()) return false;
  *target = other;
  return true;
}

}  // namespace
}  // namespace freshet

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet;
  using J = nlohmann::ordered_json;
  J doc = J::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  Parse(doc);
  if (doc.is_object()) Parse(J::array({doc}));
  (void)ParseSourceSpec(&doc, "source");
  if (doc.is_object()) {
    if (auto it = doc.find("source"); it != doc.end()) (void)ParseSourceSpec(&*it, "v.source");
  }
  if (doc.is_string()) (void)ParseFieldRef(doc.get<std::string>(), "from");
  uint64_t hash = 14695981039346656037ull;  // FNV-1a of the input
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 1099511628211ull;
  if (Confuse(&doc, hash)) {
    Parse(doc);
    if (doc.is_object()) Parse(J::array({doc}));
  }
  return 0;
}
