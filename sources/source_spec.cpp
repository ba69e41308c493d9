#include "sources/source_spec.h"

#include <cstdlib>
#include <set>

namespace freshet {
namespace {

Status Fail(const std::string& where, const std::string& what) {
  return Status::InvalidArgument(where + ": " + what);
}

// The unescaped tokens of an RFC 6901 pointer ("" is the whole value).
Result<std::vector<std::string>> PointerTokens(const std::string& pointer, const std::string& where) {
  try {
    (void)nlohmann::json::json_pointer(pointer);
  } catch (const std::exception& e) {
    return Fail(where, std::string("bad JSON pointer: ") + e.what());
  }
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  for (size_t start = 1;;) {
    size_t slash = pointer.find('/', start);
    std::string token = pointer.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string unescaped;
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size())
        unescaped += token[++i] == '1' ? '/' : '~';
      else
        unescaped += token[i];
    }
    tokens.push_back(std::move(unescaped));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return tokens;
}

// source.schema_registry, with defaults from the environment (so that one
// setting serves every view of a process, and secrets need not sit in the
// definitions).
Status ParseRegistryConfig(const nlohmann::ordered_json* source, const std::string& where,
                           SchemaRegistryConfig* out) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  out->url = env("FRESHET_SCHEMA_REGISTRY_URL");
  out->username = env("FRESHET_SCHEMA_REGISTRY_USERNAME");
  out->password = env("FRESHET_SCHEMA_REGISTRY_PASSWORD");
  out->token = env("FRESHET_SCHEMA_REGISTRY_TOKEN");
  auto it = source->find("schema_registry");
  if (it == source->end()) return Status::Ok();
  std::string at = where + ".schema_registry";
  if (!it->is_object()) return Fail(at, "expected an object like {\"url\": \"http://registry:8081\"}");
  for (auto field = it->begin(); field != it->end(); ++field) {
    const std::string& key = field.key();
    if (key == "url" || key == "username" || key == "password" || key == "token") {
      if (!field->is_string()) return Fail(at + "." + key, "expected a string");
      std::string value = field->get<std::string>();
      if (key == "url")
        out->url = value;
      else if (key == "username")
        out->username = value;
      else if (key == "password")
        out->password = value;
      else
        out->token = value;
    } else if (key == "connect_timeout_ms" || key == "request_timeout_ms") {
      if (!field->is_number_integer() || field->get<int64_t>() < 1 || field->get<int64_t>() > 600000)
        return Fail(at + "." + key, "expected milliseconds from 1 to 600000");
      (key == "connect_timeout_ms" ? out->connect_timeout_ms : out->request_timeout_ms) = field->get<int>();
    } else {
      return Fail(
          at + "." + key,
          "unknown key (known: connect_timeout_ms, password, request_timeout_ms, token, url, username)");
    }
  }
  if (!out->url.empty() && out->url.rfind("http://", 0) != 0 && out->url.rfind("https://", 0) != 0)
    return Fail(at + ".url", "expected an http:// or https:// URL, got \"" + out->url + "\"");
  return Status::Ok();
}

}  // namespace

Result<FieldRef> ParseFieldRef(const std::string& text, const std::string& where) {
  FieldRef ref;
  static const std::pair<const char*, FieldRef::Kind> kNamed[] = {
      {"$ts", FieldRef::kTs},        {"$type", FieldRef::kType},   {"$id", FieldRef::kId},
      {"$key", FieldRef::kKey},      {"$topic", FieldRef::kTopic}, {"$partition", FieldRef::kPartition},
      {"$offset", FieldRef::kOffset}};
  for (const auto& [name, kind] : kNamed) {
    if (text == name) {
      ref.kind = kind;
      return ref;
    }
  }
  if (text.rfind("$key/", 0) == 0) {
    auto tokens = PointerTokens(text.substr(4), where);
    if (!tokens.ok()) return tokens.status();
    ref.kind = FieldRef::kKeyPointer;
    ref.segments = std::move(tokens.value());
    return ref;
  }
  if (text.rfind("$header.", 0) == 0 && text.size() > 8) {
    ref.kind = FieldRef::kHeader;
    ref.text = text.substr(8);
    return ref;
  }
  if (text.empty() || text[0] != '/')
    return Fail(where,
                "expected a JSON pointer like \"/store\", or $key, $key/ptr, $ts, $type, $id, $topic, "
                "$partition, $offset, $header.NAME; got \"" +
                    text + "\"");
  auto tokens = PointerTokens(text, where);
  if (!tokens.ok()) return tokens.status();
  ref.kind = FieldRef::kData;
  ref.segments = std::move(tokens.value());
  return ref;
}

const char* FormatName(SourceFormat format) {
  switch (format) {
    case SourceFormat::kFreshet:
      return "freshet";
    case SourceFormat::kJson:
      return "json";
    case SourceFormat::kAvro:
      return "avro";
    case SourceFormat::kProtobuf:
      return "protobuf";
    case SourceFormat::kJsonSr:
      return "json_sr";
  }
  return "?";
}

const char* EnvelopeName(SourceEnvelope envelope) {
  switch (envelope) {
    case SourceEnvelope::kFreshet:
      return "freshet";
    case SourceEnvelope::kAppend:
      return "append";
    case SourceEnvelope::kUpsert:
      return "upsert";
    case SourceEnvelope::kDebezium:
      return "debezium";
  }
  return "?";
}

Result<SourceSpec> ParseSourceSpec(const nlohmann::ordered_json* source, const std::string& where) {
  SourceSpec spec;
  spec.type.kind = FieldRef::kConstant;
  spec.timestamp.kind = FieldRef::kConstant;
  if (!source) return spec;
  if (!source->is_object())
    return Fail(where, "expected an object like {\"topic\": ..., \"format\": \"json\"}");
  static const std::set<std::string> kKeys = {"topic",      "format",         "envelope",
                                              "type",       "timestamp",      "allow_incomplete_log",
                                              "key_format", "schema_registry"};
  for (auto it = source->begin(); it != source->end(); ++it)
    if (!kKeys.count(it.key()))
      return Fail(where + "." + it.key(),
                  "unknown key (known: allow_incomplete_log, envelope, format, key_format, schema_registry, "
                  "timestamp, topic, type)");
  auto text = [&](const char* key, std::string* out) -> Status {
    auto it = source->find(key);
    if (it == source->end()) return Status::Ok();
    if (!it->is_string() || it->get<std::string>().empty())
      return Fail(where + "." + key, "expected a non-empty string");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  FRESHET_RETURN_IF_ERROR(text("topic", &spec.topic));
  if (!spec.topic.empty()) {
    // Kafka's own rule for topic names.
    for (char c : spec.topic)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
        return Fail(where + ".topic", "a Kafka topic name has only letters, digits, '.', '_' and '-'");
    if (spec.topic.size() > 249)
      return Fail(where + ".topic", "a Kafka topic name has at most 249 characters");
  }
  std::string format = "freshet";
  FRESHET_RETURN_IF_ERROR(text("format", &format));
  if (format == "freshet")
    spec.format = SourceFormat::kFreshet;
  else if (format == "json")
    spec.format = SourceFormat::kJson;
  else if (format == "avro")
    spec.format = SourceFormat::kAvro;
  else if (format == "protobuf")
    spec.format = SourceFormat::kProtobuf;
  else if (format == "json_sr")
    spec.format = SourceFormat::kJsonSr;
  else
    return Fail(where + ".format", "expected freshet, json, avro, protobuf or json_sr");
  std::string key_format = "json";
  FRESHET_RETURN_IF_ERROR(text("key_format", &key_format));
  if (key_format == "json" || key_format == "text")
    spec.key_format = SourceFormat::kJson;
  else if (key_format == "avro")
    spec.key_format = SourceFormat::kAvro;
  else if (key_format == "protobuf")
    spec.key_format = SourceFormat::kProtobuf;
  else if (key_format == "json_sr")
    spec.key_format = SourceFormat::kJsonSr;
  else
    return Fail(where + ".key_format",
                "expected json (the default: the key as text or JSON), avro, protobuf or json_sr");
  if (spec.format == SourceFormat::kFreshet && spec.key_format != SourceFormat::kJson)
    return Fail(where + ".key_format", "the freshet format's keys are text");
  FRESHET_RETURN_IF_ERROR(ParseRegistryConfig(source, where, &spec.schema_registry));
  if (spec.uses_registry() && spec.schema_registry.url.empty())
    return Fail(where + ".schema_registry",
                std::string("format ") +
                    FormatName(ThroughRegistry(spec.format) ? spec.format : spec.key_format) +
                    " reads its schemas from a schema registry: set schema_registry.url here or "
                    "FRESHET_SCHEMA_REGISTRY_URL");
  std::string envelope = spec.format == SourceFormat::kFreshet ? "freshet" : "append";
  FRESHET_RETURN_IF_ERROR(text("envelope", &envelope));
  if (envelope == "freshet")
    spec.envelope = SourceEnvelope::kFreshet;
  else if (envelope == "append")
    spec.envelope = SourceEnvelope::kAppend;
  else if (envelope == "upsert")
    spec.envelope = SourceEnvelope::kUpsert;
  else if (envelope == "debezium")
    spec.envelope = SourceEnvelope::kDebezium;
  else
    return Fail(where + ".envelope", "expected freshet, append, upsert or debezium");
  if ((spec.format == SourceFormat::kFreshet) != (spec.envelope == SourceEnvelope::kFreshet))
    return Fail(where + ".envelope", "the freshet envelope goes with the freshet format, and only with it");
  std::string type, timestamp;
  FRESHET_RETURN_IF_ERROR(text("type", &type));
  FRESHET_RETURN_IF_ERROR(text("timestamp", &timestamp));
  if (spec.envelope == SourceEnvelope::kFreshet && (!type.empty() || !timestamp.empty()))
    return Fail(where + (type.empty() ? ".timestamp" : ".type"),
                "the freshet envelope carries its own type and ts; only other envelopes take this");
  if (!type.empty()) {
    if (type[0] == '/' || type[0] == '$') {
      auto ref = ParseFieldRef(type, where + ".type");
      if (!ref.ok()) return ref.status();
      if (ref->kind != FieldRef::kData && ref->kind != FieldRef::kHeader &&
          ref->kind != FieldRef::kKeyPointer)
        return Fail(where + ".type", "expected $header.NAME, a JSON pointer, or a constant type name");
      spec.type = std::move(ref.value());
    } else {
      spec.type.text = type;
    }
  }
  if (!timestamp.empty()) {
    auto ref = ParseFieldRef(timestamp, where + ".timestamp");
    if (!ref.ok()) return ref.status();
    if (ref->kind != FieldRef::kData)
      return Fail(where + ".timestamp", "expected a JSON pointer into the value");
    spec.timestamp = std::move(ref.value());
  }
  if (auto it = source->find("allow_incomplete_log"); it != source->end()) {
    if (!it->is_boolean()) return Fail(where + ".allow_incomplete_log", "expected true or false");
    spec.allow_incomplete_log = it->get<bool>();
  }
  return spec;
}

}  // namespace freshet
