#include "sources/protobuf_json.h"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <map>

#include <simdjson.h>

#include "sources/json_text.h"
#include "sources/value_text.h"

namespace freshet {

namespace pb = google::protobuf;

namespace {

constexpr int kMaxDepth = 64;

// Collects the parser's complaints into one message.
class Collector : public pb::io::ErrorCollector, public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (text.empty()) text = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  void AddError(const std::string& filename, const std::string& element, const pb::Message*, ErrorLocation,
                const std::string& message) override {
    if (text.empty()) text = filename + ": " + element + ": " + message;
  }
  std::string text;
};

bool DecodeBase64(std::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = value(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return !out->empty();
}

// The schema as a FileDescriptorProto named `name`: .proto text, or what
// some serializers register, a base64 FileDescriptorProto.
Status ParseFile(const std::string& text, const std::string& name, pb::FileDescriptorProto* file) {
  // Base64 first: a .proto text always has a ';', base64 never.
  std::string bytes;
  if (text.find(';') == std::string::npos && DecodeBase64(text, &bytes) && file->ParseFromString(bytes)) {
    file->set_name(name);
    return Status::Ok();
  }
  file->Clear();
  pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  Collector errors;
  pb::io::Tokenizer tokenizer(&input, &errors);
  pb::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (parser.Parse(&tokenizer, file) && errors.text.empty()) {
    file->set_name(name);
    return Status::Ok();
  }
  return Status::InvalidArgument("Protobuf schema " + name + " does not parse: " + errors.text);
}

}  // namespace

struct ProtobufJson::State {
  State() : pool(pb::DescriptorPool::generated_pool()) { factory.SetDelegateToGeneratedFactory(true); }
  pb::DescriptorPool pool;  // over the generated pool: the well-known types are there
  pb::DynamicMessageFactory factory{&pool};
  const pb::FileDescriptor* file = nullptr;
  std::map<const pb::Descriptor*, std::unique_ptr<pb::Message>> messages;  // one reused message per type

  const pb::Descriptor* Find(const std::vector<int32_t>& indexes) const {
    if (indexes.empty() || indexes[0] >= file->message_type_count()) return nullptr;
    const pb::Descriptor* d = file->message_type(indexes[0]);
    for (size_t i = 1; i < indexes.size(); ++i) {
      if (indexes[i] >= d->nested_type_count()) return nullptr;
      d = d->nested_type(indexes[i]);
    }
    return d;
  }
};

ProtobufJson::ProtobufJson(std::unique_ptr<State> state) : state_(std::move(state)) {}
ProtobufJson::~ProtobufJson() = default;

Result<std::unique_ptr<ProtobufJson>> ProtobufJson::Compile(const std::string& schema_text,
                                                            const std::vector<Import>& imports) {
  auto state = std::make_unique<State>();
  for (const Import& import : imports) {
    if (state->pool.FindFileByName(import.name)) continue;
    pb::FileDescriptorProto proto;
    FRESHET_RETURN_IF_ERROR(ParseFile(import.text, import.name, &proto));
    Collector errors;
    if (!state->pool.BuildFileCollectingErrors(proto, &errors))
      return Status::InvalidArgument("Protobuf schema " + import.name + ": " + errors.text);
  }
  pb::FileDescriptorProto proto;
  FRESHET_RETURN_IF_ERROR(ParseFile(schema_text, "freshet_registry_schema.proto", &proto));
  Collector errors;
  state->file = state->pool.BuildFileCollectingErrors(proto, &errors);
  if (!state->file) return Status::InvalidArgument("Protobuf schema: " + errors.text);
  if (state->file->message_type_count() == 0) return Status::InvalidArgument("Protobuf schema without a message");
  return std::unique_ptr<ProtobufJson>(new ProtobufJson(std::move(state)));
}

std::string ProtobufJson::MessageName(const std::vector<int32_t>& message_indexes) const {
  const pb::Descriptor* d = state_->Find(message_indexes);
  return d ? d->full_name() : "";
}

namespace {

Status Fail(const std::string& what) { return Status::InvalidArgument("Protobuf message: " + what); }

Status WriteMessage(const pb::Message& m, int depth, std::string* out);

// One value of `field` (element `index` of a repeated field, or -1).
Status WriteValue(const pb::Message& m, const pb::FieldDescriptor* f, int index, int depth, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  bool rep = index >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: AppendInteger(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_INT64: AppendInteger(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_UINT32: AppendUnsigned(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_UINT64: AppendUnsigned(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: AppendDouble(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT: AppendFloat(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), out); break;
    case pb::FieldDescriptor::CPPTYPE_BOOL: out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false"); break;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(number);
      if (e) AppendJsonString(e->name(), out);
      else AppendInteger(number, out);  // a value this schema does not name (open enums)
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch) : r->GetStringReference(m, f, &scratch);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES) {
        AppendBase64String(s, out);
      } else {
        if (!simdjson::validate_utf8(s.data(), s.size())) return Fail("field " + f->name() + ": not valid UTF-8");
        AppendJsonString(s, out);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return WriteMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), depth + 1, out);
  }
  return Status::Ok();
}

Status WriteMessage(const pb::Message& m, int depth, std::string* out) {
  if (depth > kMaxDepth) return Fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  const std::string& type = d->full_name();
  if (type == "google.protobuf.Timestamp") {
    int64_t seconds = r->GetInt64(m, d->field(0));
    int32_t nanos = r->GetInt32(m, d->field(1));
    auto ts = TimestampOf(seconds * 1000000 + nanos / 1000, 1000000);
    if (!ts) return Fail("a Timestamp outside the years 1 to 9999");
    AppendJsonString(*ts, out);
    return Status::Ok();
  }
  if (d->file()->name() == "google/protobuf/wrappers.proto" && d->field_count() == 1)
    return WriteValue(m, d->field(0), -1, depth, out);
  if (d->file()->name() == "google/protobuf/struct.proto" || type == "google.protobuf.Duration" ||
      type == "google.protobuf.FieldMask") {
    std::string json;
    if (!pb::util::MessageToJsonString(m, &json).ok()) return Fail("cannot write " + type + " as JSON");
    out->append(json);
    return Status::Ok();
  }
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    // Absent: a message field or an `optional` (or oneof member) not set. A
    // plain proto3 scalar has no presence: its default is its value.
    if (!f->is_repeated() && f->has_presence() && !r->HasField(m, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(f->name(), out);
    out->push_back(':');
    if (f->is_map()) {
      const pb::Descriptor* entry = f->message_type();
      out->push_back('{');
      int n = r->FieldSize(m, f);
      for (int k = 0; k < n; ++k) {
        const pb::Message& e = r->GetRepeatedMessage(m, f, k);
        if (k) out->push_back(',');
        std::string key;
        FRESHET_RETURN_IF_ERROR(WriteValue(e, entry->field(0), -1, depth + 1, &key));
        if (key.empty() || key[0] != '"') key = "\"" + key + "\"";  // JSON keys are strings
        out->append(key);
        out->push_back(':');
        FRESHET_RETURN_IF_ERROR(WriteValue(e, entry->field(1), -1, depth + 1, out));
      }
      out->push_back('}');
    } else if (f->is_repeated()) {
      out->push_back('[');
      int n = r->FieldSize(m, f);
      for (int k = 0; k < n; ++k) {
        if (k) out->push_back(',');
        FRESHET_RETURN_IF_ERROR(WriteValue(m, f, k, depth, out));
      }
      out->push_back(']');
    } else {
      FRESHET_RETURN_IF_ERROR(WriteValue(m, f, -1, depth, out));
    }
  }
  out->push_back('}');
  return Status::Ok();
}

}  // namespace

Status ProtobufJson::ToJson(const std::vector<int32_t>& message_indexes, std::string_view payload, std::string* out) {
  const pb::Descriptor* d = state_->Find(message_indexes);
  if (!d) {
    std::string path;
    for (int32_t i : message_indexes) path += (path.empty() ? "" : ",") + std::to_string(i);
    return Fail("message index [" + path + "] names no message of the schema");
  }
  auto& message = state_->messages[d];
  if (!message) {
    const pb::Message* prototype = state_->factory.GetPrototype(d);
    if (!prototype) return Fail("no message type for " + d->full_name());
    message.reset(prototype->New());
  }
  message->Clear();
  if (payload.size() > static_cast<size_t>(INT32_MAX) ||
      !message->ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return Fail("cannot be parsed as " + d->full_name() + " (truncated or not written with this schema)");
  return WriteMessage(*message, 0, out);
}

std::vector<SchemaField> ProtobufJson::Fields(const std::vector<int32_t>& message_indexes) const {
  std::vector<SchemaField> fields;
  const pb::Descriptor* d = state_->Find(message_indexes);
  if (!d) return fields;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    std::string type = "jsonb", declared = f->is_repeated() ? "repeated " : "";
    if (f->containing_oneof() && !f->containing_oneof()->is_synthetic())
      declared = "oneof " + f->containing_oneof()->name() + ": ";
    if (f->message_type()) {
      const std::string& t = f->message_type()->full_name();
      declared += t;
      if (!f->is_repeated()) {
        if (t == "google.protobuf.Timestamp") type = "timestamptz";
        else if (t == "google.protobuf.StringValue" || t == "google.protobuf.BytesValue") type = "text";
        else if (t == "google.protobuf.BoolValue") type = "boolean";
        else if (t == "google.protobuf.DoubleValue" || t == "google.protobuf.FloatValue") type = "double";
        else if (f->message_type()->file()->name() == "google/protobuf/wrappers.proto") type = "bigint";
      }
    } else {
      declared += f->type_name();
      if (!f->is_repeated()) {
        switch (f->cpp_type()) {
          case pb::FieldDescriptor::CPPTYPE_INT32:
          case pb::FieldDescriptor::CPPTYPE_INT64:
          case pb::FieldDescriptor::CPPTYPE_UINT32: type = "bigint"; break;
          case pb::FieldDescriptor::CPPTYPE_UINT64: type = "numeric"; break;
          case pb::FieldDescriptor::CPPTYPE_DOUBLE:
          case pb::FieldDescriptor::CPPTYPE_FLOAT: type = "double"; break;
          case pb::FieldDescriptor::CPPTYPE_BOOL: type = "boolean"; break;
          case pb::FieldDescriptor::CPPTYPE_ENUM:
          case pb::FieldDescriptor::CPPTYPE_STRING: type = "text"; break;
          default: break;
        }
      }
    }
    fields.push_back({"/" + f->name(), type, declared});
  }
  return fields;
}

}  // namespace freshet
