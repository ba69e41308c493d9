#include "sources/avro_json.h"

#include <avro.h>

#include <deque>
#include <map>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "sources/json_text.h"
#include "sources/value_text.h"

namespace freshet {

// What the schema says of one type, beside avro-c's schema: the logical
// type and the children in avro-c's order (record fields, union branches,
// array items, map values).
struct AvroJson::Node {
  enum Logical {
    kNone, kDecimal, kDate, kTimeMillis, kTimeMicros, kTimestampMillis, kTimestampMicros,
    kLocalTimestampMillis, kLocalTimestampMicros, kUuid
  };
  explicit Node(std::string t) : type(std::move(t)) {}
  std::string type;  // the Avro type name: record, long, ...; a named type's full name for records
  Logical logical = kNone;
  int scale = 0, precision = 0;
  std::vector<const Node*> children;
  std::vector<std::string> field_names;  // records
  int64_t size = 0;                       // fixed: its size; enum: how many symbols
};

namespace {

struct SchemaDeleter {
  void operator()(avro_schema_t s) const { avro_schema_decref(s); }
};
struct IfaceDeleter {
  void operator()(avro_value_iface_t* i) const { avro_value_iface_decref(i); }
};
struct ReaderDeleter {
  void operator()(avro_reader_t r) const { avro_reader_free(r); }
};

constexpr int kMaxDepth = 64;  // a recursive schema's data nests at most this deep

}  // namespace

struct AvroJson::State {
  std::unique_ptr<std::remove_pointer_t<avro_schema_t>, SchemaDeleter> schema;
  std::unique_ptr<avro_value_iface_t, IfaceDeleter> iface;
  avro_value_t value{};
  bool has_value = false;
  std::unique_ptr<std::remove_pointer_t<avro_reader_t>, ReaderDeleter> reader;
  std::deque<Node> nodes;
  std::map<std::string, Node*> named;
  const Node* root = nullptr;

  ~State() {
    if (has_value) avro_value_decref(&value);
  }

  Result<const Node*> Build(const nlohmann::json& j, const std::string& ns) {
    if (j.is_string()) {
      std::string name = j.get<std::string>();
      static const char* kPrimitives[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"};
      for (const char* p : kPrimitives)
        if (name == p) return &nodes.emplace_back(name);
      auto it = named.find(name);
      if (it == named.end() && name.find('.') == std::string::npos && !ns.empty()) it = named.find(ns + "." + name);
      if (it == named.end()) return Status::InvalidArgument("Avro schema: unknown type \"" + name + "\"");
      return it->second;
    }
    if (j.is_array()) {
      Node& node = nodes.emplace_back("union");
      for (const auto& branch : j) {
        auto child = Build(branch, ns);
        if (!child.ok()) return child.status();
        node.children.push_back(*child);
      }
      return &node;
    }
    if (!j.is_object() || !j.contains("type")) return Status::InvalidArgument("Avro schema: a type without \"type\"");
    const auto& type = j["type"];
    if (!type.is_string()) return Build(type, ns);  // {"type": {...}} or {"type": [...]}
    std::string t = type.get<std::string>();
    if (t == "record" || t == "error" || t == "enum" || t == "fixed") {
      std::string name = j.value("name", std::string());
      std::string space = j.contains("namespace") && j["namespace"].is_string() ? j["namespace"].get<std::string>() : ns;
      std::string full = name.find('.') != std::string::npos || space.empty() ? name : space + "." + name;
      if (name.find('.') != std::string::npos) space = name.substr(0, name.rfind('.'));
      Node& node = nodes.emplace_back(t == "error" ? "record" : t);
      named[full] = &node;
      if (full != name) named[name] = &node;  // a short name, as references often use
      if (t == "fixed") {
        if (!j.contains("size") || !j["size"].is_number_integer() || j["size"].get<int64_t>() < 0)
          return Status::InvalidArgument("Avro schema: fixed " + full + " without a size");
        node.size = j["size"].get<int64_t>();
        ReadLogical(j, &node);
      }
      if (t == "enum") {
        if (!j.contains("symbols") || !j["symbols"].is_array())
          return Status::InvalidArgument("Avro schema: enum " + full + " without symbols");
        node.size = static_cast<int64_t>(j["symbols"].size());
      }
      if (t == "record" || t == "error") {
        node.type = full;
        if (!j.contains("fields") || !j["fields"].is_array())
          return Status::InvalidArgument("Avro schema: record " + full + " without fields");
        for (const auto& field : j["fields"]) {
          if (!field.is_object() || !field.contains("type"))
            return Status::InvalidArgument("Avro schema: record " + full + ": a field without a type");
          auto child = Build(field["type"], space);
          if (!child.ok()) return child.status();
          node.children.push_back(*child);
          node.field_names.push_back(field.value("name", std::string()));
        }
      }
      return &node;
    }
    if (t == "array" || t == "map") {
      Node& node = nodes.emplace_back(t);
      const char* key = t == "array" ? "items" : "values";
      if (!j.contains(key)) return Status::InvalidArgument("Avro schema: " + t + " without \"" + key + "\"");
      auto child = Build(j[key], ns);
      if (!child.ok()) return child.status();
      node.children.push_back(*child);
      return &node;
    }
    auto primitive = Build(type, ns);  // a primitive with attributes, e.g. a logical type
    if (!primitive.ok()) return primitive.status();
    Node& node = nodes.emplace_back(**primitive);
    ReadLogical(j, &node);
    return &node;
  }

  static void ReadLogical(const nlohmann::json& j, Node* node) {
    if (!j.contains("logicalType") || !j["logicalType"].is_string()) return;
    std::string l = j["logicalType"].get<std::string>();
    const std::string& t = node->type;
    if (l == "decimal" && (t == "bytes" || t == "fixed")) {
      node->logical = Node::kDecimal;
      if (j.contains("scale") && j["scale"].is_number_integer()) node->scale = j["scale"].get<int>();
      if (j.contains("precision") && j["precision"].is_number_integer()) node->precision = j["precision"].get<int>();
      if (node->scale < 0 || node->scale > 1000) node->logical = Node::kNone;  // not a valid decimal: raw bytes
    } else if (l == "date" && t == "int") node->logical = Node::kDate;
    else if (l == "time-millis" && t == "int") node->logical = Node::kTimeMillis;
    else if (l == "time-micros" && t == "long") node->logical = Node::kTimeMicros;
    else if (l == "timestamp-millis" && t == "long") node->logical = Node::kTimestampMillis;
    else if (l == "timestamp-micros" && t == "long") node->logical = Node::kTimestampMicros;
    else if (l == "local-timestamp-millis" && t == "long") node->logical = Node::kLocalTimestampMillis;
    else if (l == "local-timestamp-micros" && t == "long") node->logical = Node::kLocalTimestampMicros;
    else if (l == "uuid" && t == "string") node->logical = Node::kUuid;
  }
};

AvroJson::AvroJson(std::unique_ptr<State> state) : state_(std::move(state)) {}
AvroJson::~AvroJson() = default;

Result<std::unique_ptr<AvroJson>> AvroJson::Compile(const std::string& schema_text) {
  auto state = std::make_unique<State>();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(schema_text);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("Avro schema is not JSON: ") + e.what());
  }
  auto root = state->Build(j, "");
  if (!root.ok()) return root.status();
  state->root = *root;
  avro_schema_t schema = nullptr;
  if (avro_schema_from_json_length(schema_text.data(), schema_text.size(), &schema) != 0)
    return Status::InvalidArgument(std::string("Avro schema refused by avro-c: ") + avro_strerror());
  state->schema.reset(schema);
  state->iface.reset(avro_generic_class_from_schema(schema));
  if (!state->iface) return Status::InvalidArgument(std::string("Avro schema: ") + avro_strerror());
  if (avro_generic_value_new(state->iface.get(), &state->value) != 0)
    return Status::InvalidArgument(std::string("Avro schema: ") + avro_strerror());
  state->has_value = true;
  state->reader.reset(avro_reader_memory(nullptr, 0));
  return std::unique_ptr<AvroJson>(new AvroJson(std::move(state)));
}

namespace {

Status Fail(const std::string& what) { return Status::InvalidArgument("Avro datum: " + what); }

// HH:MM:SS.fff(fff) of a time of day in units of 1/per_second s.
std::string TimeOfDay(int64_t units, int64_t per_second) {
  if (units < 0) units = 0;
  int64_t s = units / per_second, frac = units % per_second;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld.%0*lld", static_cast<long long>(s / 3600 % 24),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60), per_second == 1000 ? 3 : 6,
                static_cast<long long>(frac));
  return buf;
}

void AppendText(const std::optional<std::string>& text, std::string* out) {
  if (text) AppendJsonString(*text, out);
  else out->append("null");  // outside years 1-9999: no column can hold it
}

Status Walk(avro_value_t* v, const AvroJson::Node* node, int depth, std::string* out);

// Checks that `bytes` hold one datum of the schema, every length and count
// within the bytes there are, before avro-c reads it: avro-c trusts them
// (a corrupt length is a huge allocation, a corrupt count of nulls an
// endless loop). Reads nothing into memory.
class DatumCheck {
 public:
  explicit DatumCheck(std::string_view bytes) : bytes_(bytes), items_left_(1024 + 16 * bytes.size()) {}

  Status Check(const AvroJson::Node* root) {
    if (!Skip(root, 0)) return Fail(why_.empty() ? "truncated" : why_);
    if (pos_ != bytes_.size()) return Fail("bytes left over after the datum: not written with this schema");
    return Status::Ok();
  }

 private:
  bool Bad(const std::string& why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  bool Long(int64_t* out) {
    uint64_t z = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= bytes_.size()) return Bad("truncated: a number is cut off");
      uint8_t b = static_cast<uint8_t>(bytes_[pos_++]);
      z |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
        return true;
      }
    }
    return Bad("a number longer than 10 bytes");
  }
  bool Take(int64_t n) {
    if (n < 0 || static_cast<uint64_t>(n) > bytes_.size() - pos_)
      return Bad("truncated: a length of " + std::to_string(n) + " with " + std::to_string(bytes_.size() - pos_) +
                 " bytes left");
    pos_ += static_cast<size_t>(n);
    return true;
  }
  bool Skip(const AvroJson::Node* node, int depth) {
    if (depth > kMaxDepth) return Bad("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    const std::string& t = node->type;
    int64_t n = 0;
    if (t == "null") return true;
    if (t == "boolean") return Take(1);
    if (t == "int" || t == "long") return Long(&n);
    if (t == "float") return Take(4);
    if (t == "double") return Take(8);
    if (t == "bytes" || t == "string") return Long(&n) && Take(n);
    if (t == "fixed") return Take(node->size);
    if (t == "enum") {
      if (!Long(&n)) return false;
      return n >= 0 && n < node->size ? true : Bad("enum symbol " + std::to_string(n) + " is not in the schema");
    }
    if (t == "union") {
      if (!Long(&n)) return false;
      if (n < 0 || static_cast<size_t>(n) >= node->children.size())
        return Bad("union branch " + std::to_string(n) + " is not in the schema");
      return Skip(node->children[static_cast<size_t>(n)], depth + 1);
    }
    if (t == "array" || t == "map") {
      for (;;) {
        int64_t count = 0;
        if (!Long(&count)) return false;
        if (count == 0) return true;
        if (count < 0) {
          int64_t block_bytes = 0;
          if (!Long(&block_bytes) || block_bytes < 0) return Bad("a bad block size");
          count = count == INT64_MIN ? INT64_MAX : -count;
        }
        if (static_cast<uint64_t>(count) > items_left_) return Bad("more items than a record of this size can hold");
        items_left_ -= static_cast<uint64_t>(count);
        for (int64_t i = 0; i < count; ++i) {
          if (t == "map" && !(Long(&n) && Take(n))) return false;
          if (!Skip(node->children[0], depth + 1)) return false;
        }
      }
    }
    for (const AvroJson::Node* field : node->children)  // a record
      if (!Skip(field, depth + 1)) return false;
    return true;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  uint64_t items_left_;  // a bound on array and map items, so that a datum of nulls cannot loop for ever
  std::string why_;
};

}  // namespace

namespace {

Status Walk(avro_value_t* v, const AvroJson::Node* node, int depth, std::string* out) {
  using Node = AvroJson::Node;
  if (depth > kMaxDepth) return Fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
  switch (avro_value_get_type(v)) {
    case AVRO_STRING: {
      const char* s = nullptr;
      size_t size = 0;
      avro_value_get_string(v, &s, &size);
      std::string_view text(s, size > 0 ? size - 1 : 0);  // avro-c counts the NUL
      if (!simdjson::validate_utf8(text.data(), text.size())) return Fail("a string that is not valid UTF-8");
      AppendJsonString(text, out);
      return Status::Ok();
    }
    case AVRO_BYTES:
    case AVRO_FIXED: {
      const void* b = nullptr;
      size_t size = 0;
      if (avro_value_get_type(v) == AVRO_BYTES) avro_value_get_bytes(v, &b, &size);
      else avro_value_get_fixed(v, &b, &size);
      std::string_view bytes(static_cast<const char*>(b), size);
      if (node->logical == Node::kDecimal && size <= 1024) AppendJsonString(DecimalText(bytes, node->scale), out);
      else AppendBase64String(bytes, out);
      return Status::Ok();
    }
    case AVRO_INT32: {
      int32_t i = 0;
      avro_value_get_int(v, &i);
      if (node->logical == Node::kDate) AppendText(DateOfDays(i), out);
      else if (node->logical == Node::kTimeMillis) AppendJsonString(TimeOfDay(i, 1000), out);
      else AppendInteger(i, out);
      return Status::Ok();
    }
    case AVRO_INT64: {
      int64_t i = 0;
      avro_value_get_long(v, &i);
      switch (node->logical) {
        case Node::kTimestampMillis: AppendText(TimestampOf(i, 1000), out); break;
        case Node::kTimestampMicros: AppendText(TimestampOf(i, 1000000), out); break;
        case Node::kLocalTimestampMillis:
        case Node::kLocalTimestampMicros: {
          // A wall-clock time in no zone: without the +00 (timestamptz reads it in the session's zone).
          auto ts = TimestampOf(i, node->logical == Node::kLocalTimestampMillis ? 1000 : 1000000);
          if (ts) ts->resize(ts->size() - 3);
          AppendText(ts, out);
          break;
        }
        case Node::kTimeMicros: AppendJsonString(TimeOfDay(i, 1000000), out); break;
        default: AppendInteger(i, out);
      }
      return Status::Ok();
    }
    case AVRO_FLOAT: {
      float f = 0;
      avro_value_get_float(v, &f);
      AppendFloat(f, out);
      return Status::Ok();
    }
    case AVRO_DOUBLE: {
      double d = 0;
      avro_value_get_double(v, &d);
      AppendDouble(d, out);
      return Status::Ok();
    }
    case AVRO_BOOLEAN: {
      int b = 0;
      avro_value_get_boolean(v, &b);
      out->append(b ? "true" : "false");
      return Status::Ok();
    }
    case AVRO_NULL: out->append("null"); return Status::Ok();
    case AVRO_ENUM: {
      int symbol = 0;
      avro_value_get_enum(v, &symbol);
      const char* name = avro_schema_enum_get(avro_value_get_schema(v), symbol);
      if (!name) return Fail("enum symbol " + std::to_string(symbol) + " is not in the schema");
      AppendJsonString(name, out);
      return Status::Ok();
    }
    case AVRO_RECORD: {
      size_t count = 0;
      avro_value_get_size(v, &count);
      if (count != node->children.size()) return Fail("record " + node->type + " does not match its schema");
      out->push_back('{');
      for (size_t i = 0; i < count; ++i) {
        avro_value_t field;
        const char* name = nullptr;
        avro_value_get_by_index(v, i, &field, &name);
        if (i) out->push_back(',');
        AppendJsonString(name ? name : node->field_names[i], out);
        out->push_back(':');
        FRESHET_RETURN_IF_ERROR(Walk(&field, node->children[i], depth + 1, out));
      }
      out->push_back('}');
      return Status::Ok();
    }
    case AVRO_MAP:
    case AVRO_ARRAY: {
      bool map = avro_value_get_type(v) == AVRO_MAP;
      size_t count = 0;
      avro_value_get_size(v, &count);
      out->push_back(map ? '{' : '[');
      for (size_t i = 0; i < count; ++i) {
        avro_value_t item;
        const char* key = nullptr;
        avro_value_get_by_index(v, i, &item, &key);
        if (i) out->push_back(',');
        if (map) {
          std::string_view k = key ? key : "";
          if (!simdjson::validate_utf8(k.data(), k.size())) return Fail("a map key that is not valid UTF-8");
          AppendJsonString(k, out);
          out->push_back(':');
        }
        FRESHET_RETURN_IF_ERROR(Walk(&item, node->children[0], depth + 1, out));
      }
      out->push_back(map ? '}' : ']');
      return Status::Ok();
    }
    case AVRO_UNION: {
      int discriminant = 0;
      avro_value_t branch;
      avro_value_get_discriminant(v, &discriminant);
      if (avro_value_get_current_branch(v, &branch) != 0 || discriminant < 0 ||
          static_cast<size_t>(discriminant) >= node->children.size())
        return Fail("union branch " + std::to_string(discriminant) + " is not in the schema");
      return Walk(&branch, node->children[static_cast<size_t>(discriminant)], depth + 1, out);
    }
    default: return Fail("a value of an unknown type");
  }
}

}  // namespace

Status AvroJson::ToJson(std::string_view payload, std::string* out) {
  State& s = *state_;
  FRESHET_RETURN_IF_ERROR(DatumCheck(payload).Check(s.root));
  avro_value_reset(&s.value);
  avro_reader_memory_set_source(s.reader.get(), payload.data(), static_cast<int64_t>(payload.size()));
  if (avro_value_read(s.reader.get(), &s.value) != 0) {
    std::string why = avro_strerror();
    return Fail("cannot be read with its writer schema (truncated or not written with it): " + why);
  }
  // A whole datum leaves nothing over (avro_reader_is_eof answers only for
  // files): one more byte must not be there.
  char extra = 0;
  if (avro_read(s.reader.get(), &extra, 1) == 0)
    return Fail("bytes left over after the datum: not written with this schema");
  return Walk(&s.value, s.root, 0, out);
}

std::vector<SchemaField> AvroJson::Fields() const {
  std::vector<SchemaField> fields;
  const Node* root = state_->root;
  if (root->field_names.empty()) return fields;
  for (size_t i = 0; i < root->children.size(); ++i) {
    const Node* n = root->children[i];
    std::string declared;
    bool nullable = false;
    if (n->type == "union") {
      // ["null", T]: an optional T.
      const Node* only = nullptr;
      declared = "union [";
      for (size_t b = 0; b < n->children.size(); ++b) {
        declared += (b ? ", " : "") + n->children[b]->type;
        if (n->children[b]->type == "null") nullable = true;
        else only = only ? nullptr : n->children[b];
      }
      declared += "]";
      if (only && n->children.size() <= 2) n = only;
    }
    std::string type = "jsonb";
    switch (n->logical) {
      case Node::kDecimal: type = "numeric"; break;
      case Node::kDate: type = "date"; break;
      case Node::kTimestampMillis:
      case Node::kTimestampMicros:
      case Node::kLocalTimestampMillis:
      case Node::kLocalTimestampMicros: type = "timestamptz"; break;
      case Node::kUuid: type = "uuid"; break;
      case Node::kTimeMillis:
      case Node::kTimeMicros: type = "text"; break;
      case Node::kNone:
        if (n->type == "int" || n->type == "long") type = "bigint";
        else if (n->type == "float" || n->type == "double") type = "double";
        else if (n->type == "boolean") type = "boolean";
        else if (n->type == "string" || n->type == "enum" || n->type == "bytes" || n->type == "fixed") type = "text";
    }
    if (declared.empty()) declared = n->type;
    if (n->logical != Node::kNone) {
      static const char* kNames[] = {"", "decimal", "date", "time-millis", "time-micros", "timestamp-millis",
                                     "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros", "uuid"};
      declared += std::string(" (") + kNames[n->logical] +
                  (n->logical == Node::kDecimal ? "(" + std::to_string(n->precision) + "," + std::to_string(n->scale) + ")" : "") +
                  ")";
    }
    (void)nullable;
    fields.push_back({"/" + root->field_names[i], type, declared});
  }
  return fields;
}

}  // namespace freshet
