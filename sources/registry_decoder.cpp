#include "sources/registry_decoder.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>

namespace freshet {
namespace {

const char* RegistryType(SourceFormat format) {
  switch (format) {
    case SourceFormat::kAvro:
      return "AVRO";
    case SourceFormat::kProtobuf:
      return "PROTOBUF";
    default:
      return "JSON";
  }
}

// The top-level properties of a JSON Schema, with the column types their
// "type" (and "format") suggest.
std::vector<SchemaField> JsonSchemaFields(const std::string& text) {
  std::vector<SchemaField> fields;
  auto schema = nlohmann::ordered_json::parse(text, nullptr, false);
  if (!schema.is_object() || !schema.contains("properties") || !schema["properties"].is_object())
    return fields;
  for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
    std::string type = it->is_object() && it->contains("type") && (*it)["type"].is_string()
                           ? (*it)["type"].get<std::string>()
                           : "";
    std::string format = it->is_object() && it->contains("format") && (*it)["format"].is_string()
                             ? (*it)["format"].get<std::string>()
                             : "";
    std::string column = "jsonb";
    if (type == "integer")
      column = "bigint";
    else if (type == "number")
      column = "double";
    else if (type == "boolean")
      column = "boolean";
    else if (type == "string")
      column = format == "date"        ? "date"
               : format == "date-time" ? "timestamptz"
               : format == "uuid"      ? "uuid"
                                       : "text";
    std::string declared = type.empty() ? "any" : type;
    if (!format.empty()) declared += " (" + format + ")";
    fields.push_back({"/" + it.key(), column, declared});
  }
  return fields;
}

}  // namespace

RegistryDecoder::RegistryDecoder(SourceFormat format, std::shared_ptr<SchemaRegistry> registry)
    : format_(format), registry_(std::move(registry)) {}

RegistryDecoder::~RegistryDecoder() = default;

Status RegistryDecoder::CollectImports(const RegisteredSchema& schema, int depth,
                                       std::vector<ProtobufJson::Import>* imports) {
  if (depth > 16) return Status::InvalidArgument("schema references nest deeper than 16");
  for (const SchemaReference& ref : schema.references) {
    if (ref.name.rfind("google/protobuf/", 0) == 0) continue;  // well-known types: built in
    auto referenced = registry_->BySubjectVersion(ref.subject, ref.version);
    if (!referenced.ok()) {
      if (referenced.status().code() == StatusCode::kNotFound)
        return Status::InvalidArgument("schema reference " + ref.name + ": " + referenced.status().message());
      return referenced.status();
    }
    FRESHET_RETURN_IF_ERROR(CollectImports(**referenced, depth + 1, imports));  // dependencies first
    imports->push_back({ref.name, (*referenced)->text});
  }
  return Status::Ok();
}

Result<RegistryDecoder::Compiled*> RegistryDecoder::Schema(int32_t id) {
  if (auto it = compiled_.find(id); it != compiled_.end()) return it->second.get();
  if (!registry_) return Status::Unavailable("no schema registry configured");
  auto fetched = registry_->ById(id);
  if (!fetched.ok()) {
    // An id the registry does not know is the record's fault; the registry
    // being unreachable is not.
    if (fetched.status().code() == StatusCode::kNotFound)
      return Status::InvalidArgument(fetched.status().message());
    return fetched.status();
  }
  const RegisteredSchema& schema = **fetched;
  auto compiled = std::make_unique<Compiled>();
  std::string where = "schema id " + std::to_string(id);
  if (schema.type != RegistryType(format_)) {
    compiled->error = Status::InvalidArgument(where + " is a " + schema.type +
                                              " schema, but the source's format is " + FormatName(format_));
  } else if (format_ == SourceFormat::kAvro) {
    if (!schema.references.empty()) {
      compiled->error = Status::InvalidArgument(where + ": Avro schemas with references are not supported");
    } else {
      auto avro = AvroJson::Compile(schema.text);
      if (avro.ok())
        compiled->avro = std::move(avro.value());
      else
        compiled->error = avro.status().WithContext(where);
    }
  } else if (format_ == SourceFormat::kProtobuf) {
    std::vector<ProtobufJson::Import> imports;
    Status st = CollectImports(schema, 0, &imports);
    if (st.code() == StatusCode::kUnavailable) return st;  // ask again later
    if (st.ok()) {
      auto protobuf = ProtobufJson::Compile(schema.text, imports);
      if (protobuf.ok())
        compiled->protobuf = std::move(protobuf.value());
      else
        st = protobuf.status();
    }
    compiled->error = st.WithContext(where);
  }
  if (format_ == SourceFormat::kJsonSr && compiled->error.ok())
    compiled->json_fields = JsonSchemaFields(schema.text);
  Compiled* out = compiled.get();
  compiled_[id] = std::move(compiled);
  return out;
}

Status RegistryDecoder::ToJson(std::string_view bytes, std::string* out) {
  out->clear();
  FRESHET_RETURN_IF_ERROR(ParseWireFrame(bytes, format_ == SourceFormat::kProtobuf, &frame_));
  auto schema = Schema(frame_.schema_id);
  if (!schema.ok()) return schema.status();
  Compiled& c = **schema;
  if (!c.error.ok()) return c.error;
  Status st;
  if (c.avro) {
    st = c.avro->ToJson(frame_.payload, out);
  } else if (c.protobuf) {
    st = c.protobuf->ToJson(frame_.message_indexes, frame_.payload, out);
  } else {
    // JSON Schema: the payload is the JSON (validated by the parse that follows).
    out->assign(frame_.payload);
  }
  if (!st.ok()) return st.WithContext("schema id " + std::to_string(frame_.schema_id));
  return Status::Ok();
}

Result<std::vector<SchemaField>> RegistryDecoder::Fields(int32_t id,
                                                         const std::vector<int32_t>& message_indexes) {
  auto schema = Schema(id);
  if (!schema.ok()) return schema.status();
  Compiled& c = **schema;
  if (!c.error.ok()) return c.error;
  if (c.avro) return c.avro->Fields();
  if (c.protobuf) return c.protobuf->Fields(message_indexes);
  return c.json_fields;
}

}  // namespace freshet
