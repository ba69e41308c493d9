#include "sources/protobuf_json.h"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "core/json_text.h"
#include "sources/value_text.h"

namespace freshet {

namespace pb = google::protobuf;

namespace {

constexpr int kMaxDepth = 64;

// Collects the parser's complaints into one message.
class Collector : public pb::io::ErrorCollector, public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (text.empty())
      text = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
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

// What the direct reader (WireReader below) needs of one message type,
// worked out once per type: which field a number names, and whether the
// type is one the direct reader handles at all.
struct FastType {
  enum Special { kPlain, kTimestamp, kWrapper };
  const pb::Descriptor* descriptor = nullptr;
  bool supported = true;  // false: maps, groups, required fields, Struct & co: read by DynamicMessage
  Special special = kPlain;
  std::vector<int> by_number;                  // field number -> index in the type's fields, or -1
  std::vector<const FastType*> message_types;  // per field index: a message field's type
  std::vector<int> oneof;                      // per field index: its real oneof's index, or -1
  std::vector<std::string> keys;               // per field index: `"name":`, the JSON text made once

  int FieldIndex(uint64_t number) const {
    if (number < by_number.size()) return by_number[number];
    if (number > 536870911) return -1;
    const pb::FieldDescriptor* f = descriptor->FindFieldByNumber(static_cast<int>(number));
    return f ? f->index() : -1;
  }
};

namespace {

// Reads a message straight from its wire format and writes its JSON in the
// same pass over a few reused vectors: no DynamicMessage is filled and no
// reflection walked (those were ~85% of a record's cost). It writes exactly
// what WriteMessage writes for the same bytes, for the cases it handles; on
// anything else (a map, a group, a message field sent twice, which Protobuf
// merges, an unknown value of a closed enum, a wire type that does not
// match, bytes that do not parse) it gives up, and the record is read by
// DynamicMessage, whose answer (or refusal) counts.
class WireReader {
 public:
  // A scratch per depth, made up front: a reference to one stays valid
  // while deeper messages are read.
  WireReader() : scratch_(kMaxDepth + 1) {}

  // false: not handled here (see above); *out is then in any state.
  bool Message(std::string_view bytes, const FastType& type, int depth, std::string* out) {
    if (depth > kMaxDepth || !type.supported) return false;
    const pb::Descriptor* d = type.descriptor;
    Scratch& s = scratch_[static_cast<size_t>(depth)];
    s.entries.clear();
    s.last.assign(static_cast<size_t>(d->field_count()), -1);
    s.count.assign(static_cast<size_t>(d->field_count()), 0);
    // Pass 1: every field on the wire, in order.
    size_t pos = 0;
    while (pos < bytes.size()) {
      uint32_t tag = 0;
      if (!Tag(bytes, &pos, &tag)) return false;
      Entry e;
      e.wire = static_cast<int>(tag & 7);
      switch (e.wire) {
        case 0:
          if (!Varint(bytes, &pos, &e.number)) return false;
          break;
        case 1:
          if (!Fixed(bytes, &pos, 8, &e.number)) return false;
          break;
        case 5:
          if (!Fixed(bytes, &pos, 4, &e.number)) return false;
          break;
        case 2: {
          uint64_t n = 0;
          if (!Varint(bytes, &pos, &n) || n > bytes.size() - pos) return false;
          e.bytes = bytes.substr(pos, static_cast<size_t>(n));
          pos += static_cast<size_t>(n);
          break;
        }
        default:
          return false;  // groups, or not a wire type
      }
      e.field = type.FieldIndex(tag >> 3);
      if (e.field < 0) continue;  // a field this schema does not know: Protobuf keeps it aside, unwritten
      const pb::FieldDescriptor* f = d->field(e.field);
      int wire = WireTypeOf(f);
      if (e.wire != wire && !(e.wire == 2 && f->is_packable())) return false;  // Protobuf would keep it aside
      // Protobuf checks every string it parses, also one a later value
      // replaces (proto3 refuses the message; proto2 only logs).
      if (f->type() == pb::FieldDescriptor::TYPE_STRING && !IsValidUtf8(e.bytes)) return false;
      s.last[static_cast<size_t>(e.field)] = static_cast<int>(s.entries.size());
      ++s.count[static_cast<size_t>(e.field)];
      s.entries.push_back(e);
    }
    // Pass 2: the fields in the schema's order, as WriteMessage writes them.
    if (type.special == FastType::kTimestamp) {
      int64_t seconds = Last(s, 0) ? static_cast<int64_t>(Last(s, 0)->number) : 0;
      int32_t nanos = Last(s, 1) ? static_cast<int32_t>(Last(s, 1)->number) : 0;
      if (seconds < -400000000000 || seconds > 400000000000) return false;
      auto ts = TimestampOf(seconds * 1000000 + nanos / 1000, 1000000);
      if (!ts) return false;
      AppendJsonString(*ts, out);
      return true;
    }
    if (type.special == FastType::kWrapper) return Field(s, type, 0, depth, out);
    out->push_back('{');
    bool first = true;
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      size_t fi = static_cast<size_t>(i);
      if (!f->is_repeated()) {
        if (s.count[fi] == 0 && f->has_presence()) continue;
        // Of a oneof only the member set last is set. A message member set
        // before it was still parsed (and may not parse): not ours to judge.
        if (type.oneof[fi] >= 0 && !OneofWinner(s, type, i)) {
          if (s.count[fi] > 0 && f->type() == pb::FieldDescriptor::TYPE_MESSAGE) return false;
          continue;
        }
      }
      if (!first) out->push_back(',');
      first = false;
      out->append(type.keys[fi]);
      if (!Field(s, type, i, depth, out)) return false;
    }
    out->push_back('}');
    return true;
  }

 private:
  struct Entry {
    int field = -1;
    int wire = 0;
    uint64_t number = 0;     // wire types 0, 1, 5
    std::string_view bytes;  // wire type 2
  };
  struct Scratch {  // one per nesting depth, kept: nothing is allocated per record
    std::vector<Entry> entries;
    std::vector<int> last, count;  // per field index
  };

  static bool Varint(std::string_view b, size_t* pos, uint64_t* out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (*pos >= b.size()) return false;
      auto c = static_cast<uint8_t>(b[(*pos)++]);
      v |= static_cast<uint64_t>(c & 0x7f) << (7 * i);
      if (!(c & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  // A field's tag: a varint of at most 5 bytes that fits 32 bits, with a
  // field number, as Protobuf's parser reads it.
  static bool Tag(std::string_view b, size_t* pos, uint32_t* out) {
    uint32_t v = 0;
    for (int i = 0; i < 5; ++i) {
      if (*pos >= b.size()) return false;
      auto c = static_cast<uint8_t>(b[(*pos)++]);
      if (i == 4 && c >= 16) return false;
      v |= static_cast<uint32_t>(c & 0x7f) << (7 * i);
      if (!(c & 0x80)) {
        *out = v;
        return v >> 3 != 0;
      }
    }
    return false;
  }
  static bool Fixed(std::string_view b, size_t* pos, size_t n, uint64_t* out) {
    if (b.size() - *pos < n) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[*pos + i])) << (8 * i);
    *pos += n;
    *out = v;
    return true;
  }
  static int WireTypeOf(const pb::FieldDescriptor* f) {
    switch (f->type()) {
      case pb::FieldDescriptor::TYPE_DOUBLE:
      case pb::FieldDescriptor::TYPE_FIXED64:
      case pb::FieldDescriptor::TYPE_SFIXED64:
        return 1;
      case pb::FieldDescriptor::TYPE_FLOAT:
      case pb::FieldDescriptor::TYPE_FIXED32:
      case pb::FieldDescriptor::TYPE_SFIXED32:
        return 5;
      case pb::FieldDescriptor::TYPE_STRING:
      case pb::FieldDescriptor::TYPE_BYTES:
      case pb::FieldDescriptor::TYPE_MESSAGE:
        return 2;
      case pb::FieldDescriptor::TYPE_GROUP:
        return 3;
      default:
        return 0;
    }
  }
  static const Entry* Last(const Scratch& s, int field) {
    if (static_cast<size_t>(field) >= s.last.size() || s.last[static_cast<size_t>(field)] < 0) return nullptr;
    return &s.entries[static_cast<size_t>(s.last[static_cast<size_t>(field)])];
  }
  static bool OneofWinner(const Scratch& s, const FastType& type, int field) {
    for (size_t j = 0; j < type.oneof.size(); ++j)
      if (static_cast<int>(j) != field && type.oneof[j] == type.oneof[static_cast<size_t>(field)] &&
          s.last[j] > s.last[static_cast<size_t>(field)])
        return false;
    return true;
  }

  // Field `i` of the message in `s`: all its values (repeated), the last
  // one, or its default.
  bool Field(const Scratch& s, const FastType& type, int i, int depth, std::string* out) {
    const pb::FieldDescriptor* f = type.descriptor->field(i);
    size_t fi = static_cast<size_t>(i);
    if (f->is_repeated()) {
      out->push_back('[');
      bool first = true;
      for (const Entry& e : s.entries) {
        if (e.field != i) continue;
        if (e.wire == 2 && f->type() != pb::FieldDescriptor::TYPE_STRING &&
            f->type() != pb::FieldDescriptor::TYPE_BYTES && f->type() != pb::FieldDescriptor::TYPE_MESSAGE) {
          // Packed: the values back to back.
          int wire = WireTypeOf(f);
          size_t pos = 0;
          while (pos < e.bytes.size()) {
            Entry v;
            v.field = i;
            v.wire = wire;
            if (!(wire == 0 ? Varint(e.bytes, &pos, &v.number)
                            : Fixed(e.bytes, &pos, wire == 1 ? 8 : 4, &v.number)))
              return false;
            if (!first) out->push_back(',');
            first = false;
            if (!Value(f, type, v, depth, out)) return false;
          }
          continue;
        }
        if (!first) out->push_back(',');
        first = false;
        if (!Value(f, type, e, depth, out)) return false;
      }
      out->push_back(']');
      return true;
    }
    if (s.count[fi] == 0) return Default(f, out);
    if (s.count[fi] > 1 && f->type() == pb::FieldDescriptor::TYPE_MESSAGE)
      return false;  // Protobuf merges them
    return Value(f, type, *Last(s, i), depth, out);
  }

  bool Value(const pb::FieldDescriptor* f, const FastType& type, const Entry& e, int depth,
             std::string* out) {
    uint64_t v = e.number;
    switch (f->type()) {
      case pb::FieldDescriptor::TYPE_INT32:
      case pb::FieldDescriptor::TYPE_SFIXED32:
        AppendInteger(static_cast<int32_t>(v), out);
        return true;
      case pb::FieldDescriptor::TYPE_INT64:
      case pb::FieldDescriptor::TYPE_SFIXED64:
        AppendInteger(static_cast<int64_t>(v), out);
        return true;
      case pb::FieldDescriptor::TYPE_UINT32:
      case pb::FieldDescriptor::TYPE_FIXED32:
        AppendUnsigned(static_cast<uint32_t>(v), out);
        return true;
      case pb::FieldDescriptor::TYPE_UINT64:
      case pb::FieldDescriptor::TYPE_FIXED64:
        AppendUnsigned(v, out);
        return true;
      case pb::FieldDescriptor::TYPE_SINT32: {
        auto u = static_cast<uint32_t>(v);
        AppendInteger(static_cast<int32_t>((u >> 1) ^ (~(u & 1) + 1)), out);
        return true;
      }
      case pb::FieldDescriptor::TYPE_SINT64:
        AppendInteger(static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)), out);
        return true;
      case pb::FieldDescriptor::TYPE_BOOL:
        out->append(v ? "true" : "false");
        return true;
      case pb::FieldDescriptor::TYPE_DOUBLE: {
        double d = 0;
        std::memcpy(&d, &v, 8);
        AppendDouble(d, out);
        return true;
      }
      case pb::FieldDescriptor::TYPE_FLOAT: {
        auto u = static_cast<uint32_t>(v);
        float x = 0;
        std::memcpy(&x, &u, 4);
        AppendFloat(x, out);
        return true;
      }
      case pb::FieldDescriptor::TYPE_ENUM: {
        auto number = static_cast<int32_t>(v);
        const pb::EnumValueDescriptor* ev = f->enum_type()->FindValueByNumber(number);
        if (ev)
          AppendJsonString(ev->name(), out);
        else if (f->enum_type()->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO3)
          AppendInteger(number, out);
        else
          return false;  // a closed enum keeps an unknown value aside
        return true;
      }
      case pb::FieldDescriptor::TYPE_STRING:
        AppendJsonString(e.bytes, out);
        return true;  // checked in pass 1
      case pb::FieldDescriptor::TYPE_BYTES:
        AppendBase64String(e.bytes, out);
        return true;
      case pb::FieldDescriptor::TYPE_MESSAGE:
        return Message(e.bytes, *type.message_types[static_cast<size_t>(f->index())], depth + 1, out);
      default:
        return false;
    }
  }

  // What Protobuf's reflection answers for a field not on the wire.
  static bool Default(const pb::FieldDescriptor* f, std::string* out) {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        AppendInteger(f->default_value_int32(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        AppendInteger(f->default_value_int64(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        AppendUnsigned(f->default_value_uint32(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        AppendUnsigned(f->default_value_uint64(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        AppendDouble(f->default_value_double(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        AppendFloat(f->default_value_float(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        out->append(f->default_value_bool() ? "true" : "false");
        return true;
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        AppendJsonString(f->default_value_enum()->name(), out);
        return true;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        if (f->type() == pb::FieldDescriptor::TYPE_BYTES)
          AppendBase64String(f->default_value_string(), out);
        else
          AppendJsonString(f->default_value_string(), out);
        return true;
      default:
        return false;  // a message: has presence, never defaulted
    }
  }

  std::vector<Scratch> scratch_;
};

}  // namespace

struct ProtobufJson::State {
  State() : pool(pb::DescriptorPool::generated_pool()) { factory.SetDelegateToGeneratedFactory(true); }
  pb::DescriptorPool pool;  // over the generated pool: the well-known types are there
  pb::DynamicMessageFactory factory{&pool};
  const pb::FileDescriptor* file = nullptr;
  std::map<const pb::Descriptor*, std::unique_ptr<pb::Message>> messages;  // one reused message per type
  std::map<const pb::Descriptor*, std::unique_ptr<FastType>> fast;         // the direct reader's, per type
  WireReader reader;

  // The direct reader's view of `d` (built on first use, with the types it
  // contains; a recursive type refers to itself).
  const FastType* Fast(const pb::Descriptor* d) {
    auto& slot = fast[d];
    if (slot) return slot.get();
    slot = std::make_unique<FastType>();
    FastType* t = slot.get();
    t->descriptor = d;
    const std::string& name = d->full_name();
    const std::string& file_name = d->file()->name();
    if (name == "google.protobuf.Timestamp")
      t->special = FastType::kTimestamp;
    else if (file_name == "google/protobuf/wrappers.proto" && d->field_count() == 1)
      t->special = FastType::kWrapper;
    else if (file_name == "google/protobuf/struct.proto" || name == "google.protobuf.Duration" ||
             name == "google.protobuf.FieldMask")
      t->supported = false;  // written by Protobuf's own JSON mapping
    int max_number = 0;
    for (int i = 0; i < d->field_count(); ++i) max_number = std::max(max_number, d->field(i)->number());
    t->by_number.assign(static_cast<size_t>(std::min(max_number, 1024) + 1), -1);
    t->message_types.assign(static_cast<size_t>(d->field_count()), nullptr);
    t->oneof.assign(static_cast<size_t>(d->field_count()), -1);
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      std::string key;
      AppendJsonString(f->name(), &key);
      t->keys.push_back(key + ":");
      if (f->number() <= 1024) t->by_number[static_cast<size_t>(f->number())] = i;
      if (f->containing_oneof() && !f->containing_oneof()->is_synthetic())
        t->oneof[static_cast<size_t>(i)] = f->containing_oneof()->index();
      if (f->is_map() || f->is_required() || f->type() == pb::FieldDescriptor::TYPE_GROUP)
        t->supported = false;
      if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
        const FastType* m = Fast(f->message_type());
        t->message_types[static_cast<size_t>(i)] = m;
        if (!m->supported) t->supported = false;
      }
    }
    return t;
  }

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
  if (state->file->message_type_count() == 0)
    return Status::InvalidArgument("Protobuf schema without a message");
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
Status WriteValue(const pb::Message& m, const pb::FieldDescriptor* f, int index, int depth,
                  std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  bool rep = index >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      AppendInteger(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      AppendInteger(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      AppendUnsigned(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      AppendUnsigned(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(number);
      if (e)
        AppendJsonString(e->name(), out);
      else
        AppendInteger(number, out);  // a value this schema does not name (open enums)
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s =
          rep ? r->GetRepeatedStringReference(m, f, index, &scratch) : r->GetStringReference(m, f, &scratch);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES) {
        AppendBase64String(s, out);
      } else {
        if (!simdjson::validate_utf8(s.data(), s.size()))
          return Fail("field " + f->name() + ": not valid UTF-8");
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

Status ProtobufJson::ToJson(const std::vector<int32_t>& message_indexes, std::string_view payload,
                            std::string* out) {
  return Decode(message_indexes, payload, true, out);
}

Status ProtobufJson::ToJsonByReflection(const std::vector<int32_t>& message_indexes, std::string_view payload,
                                        std::string* out) {
  return Decode(message_indexes, payload, false, out);
}

Status ProtobufJson::Decode(const std::vector<int32_t>& message_indexes, std::string_view payload,
                            bool direct, std::string* out) {
  const pb::Descriptor* d = state_->Find(message_indexes);
  if (!d) {
    std::string path;
    for (int32_t i : message_indexes) path += (path.empty() ? "" : ",") + std::to_string(i);
    return Fail("message index [" + path + "] names no message of the schema");
  }
  // The direct reader first; DynamicMessage for what it does not handle.
  if (direct && payload.size() <= static_cast<size_t>(INT32_MAX)) {
    size_t mark = out->size();
    if (state_->reader.Message(payload, *state_->Fast(d), 0, out)) return Status::Ok();
    out->resize(mark);
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
        if (t == "google.protobuf.Timestamp")
          type = "timestamptz";
        else if (t == "google.protobuf.StringValue" || t == "google.protobuf.BytesValue")
          type = "text";
        else if (t == "google.protobuf.BoolValue")
          type = "boolean";
        else if (t == "google.protobuf.DoubleValue" || t == "google.protobuf.FloatValue")
          type = "double";
        else if (f->message_type()->file()->name() == "google/protobuf/wrappers.proto")
          type = "bigint";
      }
    } else {
      declared += f->type_name();
      if (!f->is_repeated()) {
        switch (f->cpp_type()) {
          case pb::FieldDescriptor::CPPTYPE_INT32:
          case pb::FieldDescriptor::CPPTYPE_INT64:
          case pb::FieldDescriptor::CPPTYPE_UINT32:
            type = "bigint";
            break;
          case pb::FieldDescriptor::CPPTYPE_UINT64:
            type = "numeric";
            break;
          case pb::FieldDescriptor::CPPTYPE_DOUBLE:
          case pb::FieldDescriptor::CPPTYPE_FLOAT:
            type = "double";
            break;
          case pb::FieldDescriptor::CPPTYPE_BOOL:
            type = "boolean";
            break;
          case pb::FieldDescriptor::CPPTYPE_ENUM:
          case pb::FieldDescriptor::CPPTYPE_STRING:
            type = "text";
            break;
          default:
            break;
        }
      }
    }
    fields.push_back({"/" + f->name(), type, declared});
  }
  return fields;
}

}  // namespace freshet
