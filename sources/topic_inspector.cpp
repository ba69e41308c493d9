#include "sources/topic_inspector.h"

#include <algorithm>
#include <map>
#include <set>

#include "sources/registry_decoder.h"
#include "sources/value_text.h"

namespace freshet {
namespace {

using json = nlohmann::ordered_json;

// What the sample held under one name.
struct FieldStats {
  size_t present = 0;
  std::set<std::string> kinds;  // integer, number, boolean, uuid, date, timestamp, decimal, string, json
  std::string logical;          // a Debezium logical type name, when the schema gave one
  int scale = 0;
};

void Observe(const json& v, FieldStats* s) {
  if (v.is_null()) return;
  ++s->present;
  if (v.is_boolean())
    s->kinds.insert("boolean");
  else if (v.is_number_integer())
    s->kinds.insert("integer");
  else if (v.is_number())
    s->kinds.insert("number");
  else if (v.is_string()) {
    const std::string& t = v.get_ref<const std::string&>();
    // Digits without a point stay text: ids and codes ("007") look like that.
    bool decimal = IsDecimalText(t) && t.find('.') != std::string::npos;
    s->kinds.insert(IsUuidText(t)        ? "uuid"
                    : IsDateText(t)      ? "date"
                    : IsTimestampText(t) ? "timestamp"
                    : decimal            ? "decimal"
                                         : "string");
  } else
    s->kinds.insert("json");
}

// The definition type for what was seen, and how to say what was seen.
std::pair<std::string, std::string> TypeFor(const FieldStats& s) {
  if (s.logical == "org.apache.kafka.connect.data.Decimal")
    return {"numeric", "Debezium Decimal (base64, scale " + std::to_string(s.scale) + ")"};
  if (s.logical == "io.debezium.time.Date" || s.logical == "org.apache.kafka.connect.data.Date")
    return {"date", "Debezium Date (days since the epoch)"};
  if (s.logical == "io.debezium.time.MicroTimestamp" || s.logical == "io.debezium.time.Timestamp" ||
      s.logical == "io.debezium.time.NanoTimestamp" ||
      s.logical == "org.apache.kafka.connect.data.Timestamp" ||
      s.logical == "io.debezium.time.ZonedTimestamp")
    return {"timestamptz", "Debezium " + s.logical.substr(s.logical.rfind('.') + 1)};
  if (s.kinds.empty()) return {"text", "always null"};
  if (s.kinds.size() == 1) {
    const std::string& k = *s.kinds.begin();
    if (k == "boolean") return {"boolean", "boolean"};
    if (k == "integer") return {"bigint", "integer"};
    if (k == "number") return {"double", "number"};
    if (k == "uuid") return {"uuid", "string (UUID)"};
    if (k == "date") return {"date", "string (date)"};
    if (k == "timestamp") return {"timestamptz", "string (timestamp)"};
    if (k == "decimal") return {"numeric", "string (decimal)"};
    if (k == "string") return {"text", "string"};
    return {"jsonb", "object or array"};
  }
  if (s.kinds == std::set<std::string>{"integer", "number"}) return {"double", "number"};
  bool numeric = true;
  for (const auto& k : s.kinds) numeric = numeric && (k == "integer" || k == "number" || k == "decimal");
  if (numeric) return {"numeric", "numbers and decimal strings"};
  if (!s.kinds.count("json") && !s.kinds.count("boolean") && !s.kinds.count("integer") &&
      !s.kinds.count("number"))
    return {"text", "string"};
  std::string seen;
  for (const auto& k : s.kinds) seen += (seen.empty() ? "" : " or ") + k;
  return {"jsonb", "mixed: " + seen};
}

// Debezium's JSON converter with schemas.enable=true: {"schema", "payload"}.
const json* Payload(const json& v, const json** schema = nullptr) {
  if (v.is_object() && v.size() == 2 && v.contains("schema") && v.contains("payload")) {
    if (schema) *schema = &v["schema"];
    return &v["payload"];
  }
  return &v;
}

bool LooksLikeDebezium(const json& v) {
  const json& p = *Payload(v);
  return p.is_object() && p.contains("op") && p["op"].is_string() &&
         (p.contains("after") || p.contains("before"));
}

bool LooksLikeFreshet(const json& v) {
  return v.is_object() && v.contains("type") && v["type"].is_string() && v.contains("data") &&
         v["data"].is_object();
}

class Names {
 public:
  std::string Take(const std::string& wanted) {
    std::string name = IdentifierFor(wanted);
    std::string candidate = name;
    for (int i = 2; !taken_.insert(candidate).second; ++i)
      candidate = name.substr(0, 44) + "_" + std::to_string(i);
    return candidate;
  }

 private:
  std::set<std::string> taken_;
};

std::string Escape(const std::string& name) {  // as an RFC 6901 pointer token
  std::string out;
  for (char c : name) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

nlohmann::ordered_json ColumnJson(const InspectedField& f) { return {{"from", f.pointer}, {"type", f.type}}; }

}  // namespace

std::string IdentifierFor(const std::string& name) {
  std::string out;
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(0, "_");
  return out.substr(0, 48);
}

Inspection InspectSample(const std::vector<SampleRecord>& sample, const std::string& topic,
                         const std::string& view_name) {
  Inspection in;
  in.records = sample.size();
  std::vector<json> values;
  std::set<std::string> keys;
  size_t not_json = 0, wire_format = 0;
  int32_t schema_id = -1;
  for (const auto& r : sample) {
    if (!r.key)
      ++in.null_keys;
    else
      keys.insert(*r.key);
    if (!r.value) {
      ++in.tombstones;
      continue;
    }
    json v = json::parse(*r.value, nullptr, false);
    if (!v.is_discarded()) {
      values.push_back(std::move(v));
      continue;
    }
    ++not_json;
    if (r.value->size() >= 5 && (*r.value)[0] == '\0') {
      ++wire_format;
      const auto* b = reinterpret_cast<const unsigned char*>(r.value->data());
      schema_id = static_cast<int32_t>((b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4]);
    }
  }
  in.distinct_keys = keys.size();
  if (values.empty()) {
    in.format = "unsupported";
    if (wire_format > 0)
      in.why = "the values are in the Confluent schema-registry wire format (magic byte 0, schema id " +
               std::to_string(schema_id) +
               "): give the registry (--schema-registry URL or "
               "FRESHET_SCHEMA_REGISTRY_URL) to read them";
    else if (in.records == 0)
      in.why = "the topic holds no records to look at";
    else
      in.why = "no value in the sample is JSON (" + std::to_string(not_json) + " other, " +
               std::to_string(in.tombstones) + " null)";
    return in;
  }

  size_t freshet = 0, debezium = 0;
  for (const auto& v : values) {
    freshet += LooksLikeFreshet(v);
    debezium += LooksLikeDebezium(v);
  }
  std::string poison = not_json ? "; " + std::to_string(not_json) + " values were not JSON" : "";
  if (freshet == values.size()) {
    in.format = in.envelope = "freshet";
    in.why = "every value is freshet's envelope {type, id, ts, data}" + poison;
  } else if (debezium * 10 >= values.size() * 9) {
    in.envelope = "debezium";
    in.why = "the values are Debezium change events {before, after, op, ...}" + poison;
  } else if (in.null_keys == 0 && (in.tombstones > 0 || keys.size() < sample.size())) {
    in.envelope = "upsert";
    in.why = std::string("every record has a key, and ") +
             (in.tombstones > 0 ? std::to_string(in.tombstones) + " are tombstones (null values)"
                                : "keys repeat (" + std::to_string(keys.size()) + " keys in " +
                                      std::to_string(sample.size()) + " records)") +
             ": latest value per key" + poison;
  } else {
    in.envelope = "append";
    in.why = std::string("JSON values") + (in.null_keys ? " with null keys" : " whose keys do not repeat") +
             ": each record is an event" + poison;
  }

  // The fields of each record's row, in first-seen order.
  std::vector<std::string> order;
  std::map<std::string, FieldStats> stats;
  for (const auto& v : values) {
    const json* row = nullptr;
    if (in.envelope == "freshet") {
      row = &v["data"];
    } else if (in.envelope == "debezium") {
      const json* schema = nullptr;
      const json& p = *Payload(v, &schema);
      if (schema) in.debezium_schemas = true;
      if (!p.is_object() || !p.contains("after") || !p["after"].is_object()) continue;
      row = &p["after"];
      if (schema && schema->contains("fields") && (*schema)["fields"].is_array()) {
        for (const auto& f : (*schema)["fields"]) {
          if (f.value("field", "") != "after" || !f.contains("fields") || !f["fields"].is_array()) continue;
          for (const auto& c : f["fields"]) {
            if (!c.contains("name") || !c["name"].is_string() || !c.contains("field")) continue;
            FieldStats& s = stats[c["field"].get<std::string>()];
            s.logical = c["name"];
            if (c.contains("parameters") && c["parameters"].contains("scale") &&
                c["parameters"]["scale"].is_string())
              s.scale = std::atoi(c["parameters"]["scale"].get<std::string>().c_str());
          }
        }
      }
    } else {
      row = &v;
    }
    if (!row->is_object()) continue;
    for (auto it = row->begin(); it != row->end(); ++it) {
      if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
      Observe(it.value(), &stats[it.key()]);
    }
  }

  Names names;
  auto field = [&](const std::string& pointer, const std::string& name, const FieldStats& s) {
    InspectedField f;
    f.pointer = pointer;
    f.column = names.Take(name);
    std::tie(f.type, f.seen) = TypeFor(s);
    f.present = s.present;
    return f;
  };

  // The row's identity.
  std::set<std::string> key_names;
  if (in.envelope == "upsert" || in.envelope == "debezium") {
    std::map<std::string, FieldStats> key_stats;
    std::vector<std::string> key_order;
    bool object_keys = true;
    for (const auto& r : sample) {
      if (!r.key) continue;
      json k = json::parse(*r.key, nullptr, false);
      const json& p = k.is_discarded() ? k : *Payload(k);
      if (k.is_discarded() || !p.is_object() || p.empty()) {
        object_keys = false;
        break;
      }
      for (auto it = p.begin(); it != p.end(); ++it) {
        if (std::find(key_order.begin(), key_order.end(), it.key()) == key_order.end())
          key_order.push_back(it.key());
        Observe(it.value(), &key_stats[it.key()]);
      }
    }
    if (object_keys && !key_order.empty()) {
      for (const auto& k : key_order) {
        // Debezium rows carry their key columns: read them (and their types) from the row.
        bool in_row = in.envelope == "debezium" && stats.count(k);
        in.key_fields.push_back(
            field(in_row ? "/" + Escape(k) : "$key/" + Escape(k), k, in_row ? stats[k] : key_stats[k]));
        if (in_row) key_names.insert(k);
      }
    } else {
      FieldStats text;
      text.kinds.insert("string");
      in.key_fields.push_back(field("$key", "key", text));
    }
  } else {
    FieldStats integer;
    integer.kinds.insert("integer");
    in.key_fields.push_back(field("$partition", "partition", integer));
    in.key_fields.push_back(field("$offset", "offset", integer));
  }
  if (in.envelope == "freshet") {
    FieldStats type, ts;
    type.kinds.insert("string");
    ts.kinds.insert("timestamp");
    in.fields.push_back(field("$type", "type", type));
    in.fields.push_back(field("$ts", "ts", ts));
  }
  for (const auto& name : order)
    if (!key_names.count(name)) in.fields.push_back(field("/" + Escape(name), name, stats[name]));
  if (in.fields.empty()) {
    in.why += "; the records carry no JSON object to take columns from";
    return in;
  }

  nlohmann::ordered_json d;
  d["name"] = IdentifierFor(view_name);
  d["kind"] = "latest";
  nlohmann::ordered_json source = {{"topic", topic}};
  if (in.format != "freshet") {
    source["format"] = in.format;
    source["envelope"] = in.envelope;
  }
  d["source"] = source;
  d["key"] = nlohmann::ordered_json::object();
  for (const auto& f : in.key_fields) d["key"][f.column] = ColumnJson(f);
  d["columns"] = nlohmann::ordered_json::object();
  for (const auto& f : in.fields) d["columns"][f.column] = ColumnJson(f);
  in.definition = d;
  return in;
}

namespace {

bool Framed(const std::optional<std::string>& bytes) {
  return bytes && bytes->size() >= 5 && (*bytes)[0] == '\0';
}

// The format of the schema that the first framed record in `sample` names
// (key or value), or nullopt when none is framed; an error when the
// registry cannot say.
Result<std::optional<SourceFormat>> FramedFormat(const std::vector<SampleRecord>& sample, bool keys,
                                                 SchemaRegistry& registry, std::string* described) {
  for (const auto& r : sample) {
    const auto& bytes = keys ? r.key : r.value;
    if (!Framed(bytes)) continue;
    WireFrame frame;
    if (!ParseWireFrame(*bytes, false, &frame).ok()) continue;
    auto schema = registry.ById(frame.schema_id);
    if (!schema.ok()) return schema.status();
    if (described) *described = "schema id " + std::to_string(frame.schema_id) + " (" + (*schema)->type + ")";
    if ((*schema)->type == "PROTOBUF") return std::optional<SourceFormat>(SourceFormat::kProtobuf);
    if ((*schema)->type == "JSON") return std::optional<SourceFormat>(SourceFormat::kJsonSr);
    return std::optional<SourceFormat>(SourceFormat::kAvro);
  }
  return std::optional<SourceFormat>();
}

}  // namespace

Inspection InspectSample(const std::vector<SampleRecord>& sample, const std::string& topic,
                         const std::string& view_name, const SchemaRegistryConfig& config) {
  size_t framed = 0;
  for (const auto& r : sample) framed += Framed(r.value);
  if (framed == 0 || config.url.empty()) return InspectSample(sample, topic, view_name);
  auto registry = SchemaRegistry::Shared(config);
  std::string described;
  auto value_format = FramedFormat(sample, false, *registry, &described);
  auto key_format = FramedFormat(sample, true, *registry, nullptr);
  for (const auto* format : {&value_format, &key_format}) {
    if (format->ok()) continue;
    Inspection in = InspectSample(sample, topic, view_name);
    in.format = "unsupported";
    in.definition = nullptr;
    in.why =
        "the values are in the Confluent schema-registry wire format, but the registry cannot say which "
        "schema: " +
        format->status().message();
    return in;
  }
  // Decode what is framed into the JSON a view reads, and inspect that.
  std::vector<SampleRecord> decoded;
  size_t bad = 0;
  std::unique_ptr<RegistryDecoder> values, keys;
  std::optional<SourceFormat> value_is = value_format.value(), key_is = key_format.value();
  if (value_is) values = std::make_unique<RegistryDecoder>(*value_is, registry);
  if (key_is) keys = std::make_unique<RegistryDecoder>(*key_is, registry);
  std::string json;
  std::string first_bad;
  for (const auto& r : sample) {
    SampleRecord d = r;
    Status st;
    if (values && r.value) {
      st = values->ToJson(*r.value, &json);
      d.value = json;
    }
    if (st.ok() && keys && r.key) {
      st = keys->ToJson(*r.key, &json).WithContext("key");
      // A string key reads as that string ($key), as the view will.
      d.key = json.size() >= 2 && json[0] == '"' ? nlohmann::json::parse(json).get<std::string>() : json;
    }
    if (!st.ok()) {
      if (first_bad.empty()) first_bad = st.message();
      ++bad;
      continue;
    }
    decoded.push_back(std::move(d));
  }
  Inspection in = InspectSample(decoded, topic, view_name);
  in.records = sample.size();
  SourceFormat format = value_is ? *value_is : SourceFormat::kJson;
  in.format = FormatName(format);
  in.schema = described;
  in.why = "values in the Confluent schema-registry wire format, " + described + "; " + in.why;
  if (bad) in.why += "; " + std::to_string(bad) + " records could not be decoded (" + first_bad + ")";
  if (values) {
    for (const auto& r : sample) {
      WireFrame frame;
      if (!r.value || !ParseWireFrame(*r.value, format == SourceFormat::kProtobuf, &frame).ok()) continue;
      auto fields = values->Fields(frame.schema_id, frame.message_indexes);
      if (fields.ok()) in.schema_fields = std::move(fields.value());
      break;
    }
  }
  if (!in.definition.is_null()) {
    auto& source = in.definition["source"];
    source["format"] = in.format;
    if (key_is) source["key_format"] = FormatName(*key_is);
    source["schema_registry"] = {{"url", config.url}};
  }
  return in;
}

}  // namespace freshet
