#include "sources/avro_json.h"

#include <avro.h>
#include <simdjson.h>

#include <cstring>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>

#include "core/json_text.h"
#include "sources/value_text.h"

namespace freshet {

// What the schema says of one type, beside avro-c's schema: the logical
// type and the children in avro-c's order (record fields, union branches,
// array items, map values).
struct AvroJson::Node {
  // What the decoder switches on, so that no record compares type names.
  enum Kind {
    kNull,
    kBoolean,
    kInt,
    kLong,
    kFloat,
    kDouble,
    kBytes,
    kString,
    kFixed,
    kEnum,
    kUnion,
    kArray,
    kMap,
    kRecord
  };
  enum Logical {
    kNone,
    kDecimal,
    kDate,
    kTimeMillis,
    kTimeMicros,
    kTimestampMillis,
    kTimestampMicros,
    kLocalTimestampMillis,
    kLocalTimestampMicros,
    kUuid
  };
  explicit Node(std::string t) : type(std::move(t)), kind(KindOf(type)) {}
  std::string type;  // the Avro type name: record, long, ...; a named type's full name for records
  Kind kind;
  Logical logical = kNone;
  int scale = 0, precision = 0;
  std::vector<const Node*> children;
  std::vector<std::string> field_names;  // records
  std::vector<std::string> field_keys;   // records: each name as the JSON text `"name":`, made once
  int64_t size = 0;                      // fixed: its size; enum: how many symbols
  std::vector<std::string> symbols;      // enums

  static Kind KindOf(const std::string& t) {
    static const std::pair<const char*, Kind> kKinds[] = {
        {"null", kNull},     {"boolean", kBoolean}, {"int", kInt},       {"long", kLong},   {"float", kFloat},
        {"double", kDouble}, {"bytes", kBytes},     {"string", kString}, {"fixed", kFixed}, {"enum", kEnum},
        {"union", kUnion},   {"array", kArray},     {"map", kMap}};
    for (const auto& [name, kind] : kKinds)
      if (t == name) return kind;
    return kRecord;  // "record", or a record's full name
  }
};

namespace {

struct SchemaDeleter {
  void operator()(avro_schema_t s) const { avro_schema_decref(s); }
};

constexpr int kMaxDepth = 64;  // a recursive schema's data nests at most this deep

}  // namespace

struct AvroJson::State {
  // avro-c parses the schema at Compile, as the check that it is one; the
  // datums are read by DatumReader below, over `nodes`.
  std::unique_ptr<std::remove_pointer_t<avro_schema_t>, SchemaDeleter> schema;
  std::deque<Node> nodes;
  std::map<std::string, Node*> named;
  const Node* root = nullptr;

  Result<const Node*> Build(const nlohmann::json& j, const std::string& ns) {
    if (j.is_string()) {
      std::string name = j.get<std::string>();
      static const char* kPrimitives[] = {"null",  "boolean", "int",   "long",
                                          "float", "double",  "bytes", "string"};
      for (const char* p : kPrimitives)
        if (name == p) return &nodes.emplace_back(name);
      auto it = named.find(name);
      if (it == named.end() && name.find('.') == std::string::npos && !ns.empty())
        it = named.find(ns + "." + name);
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
    if (!j.is_object() || !j.contains("type"))
      return Status::InvalidArgument("Avro schema: a type without \"type\"");
    const auto& type = j["type"];
    if (!type.is_string()) return Build(type, ns);  // {"type": {...}} or {"type": [...]}
    std::string t = type.get<std::string>();
    if (t == "record" || t == "error" || t == "enum" || t == "fixed") {
      std::string name = j.value("name", std::string());
      std::string space =
          j.contains("namespace") && j["namespace"].is_string() ? j["namespace"].get<std::string>() : ns;
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
        for (const auto& symbol : j["symbols"])
          node.symbols.push_back(symbol.is_string() ? symbol.get<std::string>() : "");
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
          std::string key;
          AppendJsonString(node.field_names.back(), &key);
          node.field_keys.push_back(key + ":");
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
      if (j.contains("precision") && j["precision"].is_number_integer())
        node->precision = j["precision"].get<int>();
      if (node->scale < 0 || node->scale > 1000)
        node->logical = Node::kNone;  // not a valid decimal: raw bytes
    } else if (l == "date" && t == "int")
      node->logical = Node::kDate;
    else if (l == "time-millis" && t == "int")
      node->logical = Node::kTimeMillis;
    else if (l == "time-micros" && t == "long")
      node->logical = Node::kTimeMicros;
    else if (l == "timestamp-millis" && t == "long")
      node->logical = Node::kTimestampMillis;
    else if (l == "timestamp-micros" && t == "long")
      node->logical = Node::kTimestampMicros;
    else if (l == "local-timestamp-millis" && t == "long")
      node->logical = Node::kLocalTimestampMillis;
    else if (l == "local-timestamp-micros" && t == "long")
      node->logical = Node::kLocalTimestampMicros;
    else if (l == "uuid" && t == "string")
      node->logical = Node::kUuid;
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
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60),
                per_second == 1000 ? 3 : 6, static_cast<long long>(frac));
  return buf;
}

void AppendText(const std::optional<std::string>& text, std::string* out) {
  if (text)
    AppendJsonString(*text, out);
  else
    out->append("null");  // outside years 1-9999: no column can hold it
}

// Reads one binary datum straight from its bytes, following the schema's
// nodes, and writes its JSON in the same pass: no generic value is built
// and nothing is allocated but the output (this was avro-c's generic value
// plus a walk over it, three times the cost). Every length and count is
// checked against the bytes there are before it is used, so a corrupt
// datum is refused, never a huge allocation or an endless loop.
class DatumReader {
 public:
  explicit DatumReader(std::string_view bytes) : bytes_(bytes), items_left_(1024 + 16 * bytes.size()) {}

  Status Read(const AvroJson::Node* root, std::string* out) {
    if (!Value(root, 0, out)) return Fail(why_.empty() ? "truncated" : why_);
    if (pos_ != bytes_.size()) return Fail("bytes left over after the datum: not written with this schema");
    return Status::Ok();
  }

 private:
  bool Bad(const std::string& why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  // A zigzag varint of at most `max_bytes` (int: 5, long: 10).
  bool Varint(int64_t* out, int max_bytes) {
    uint64_t z = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (pos_ >= bytes_.size()) return Bad("truncated: a number is cut off");
      uint8_t b = static_cast<uint8_t>(bytes_[pos_++]);
      z |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) {
        *out = static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
        return true;
      }
    }
    return Bad("a number longer than " + std::to_string(max_bytes) + " bytes");
  }
  bool Long(int64_t* out) { return Varint(out, 10); }
  bool Int(int32_t* out) {
    int64_t v = 0;
    if (!Varint(&v, 5)) return false;
    if (v < INT32_MIN || v > INT32_MAX) return Bad("an int out of range");
    *out = static_cast<int32_t>(v);
    return true;
  }
  bool Take(int64_t n, std::string_view* out) {
    if (n < 0 || static_cast<uint64_t>(n) > bytes_.size() - pos_)
      return Bad("truncated: a length of " + std::to_string(n) + " with " +
                 std::to_string(bytes_.size() - pos_) + " bytes left");
    *out = bytes_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }
  bool Sized(std::string_view* out) {
    int64_t n = 0;
    return Long(&n) && Take(n, out);
  }
  // A string or map key, written as a JSON string.
  bool Text(const char* what, std::string* out) {
    std::string_view text;
    if (!Sized(&text)) return false;
    if (!AppendJsonStringIfUtf8(text, out)) return Bad(std::string(what) + " that is not valid UTF-8");
    return true;
  }

  bool Value(const AvroJson::Node* node, int depth, std::string* out) {
    using Node = AvroJson::Node;
    if (depth > kMaxDepth) return Bad("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    std::string_view bytes;
    switch (node->kind) {
      case Node::kNull:
        out->append("null");
        return true;
      case Node::kBoolean:
        if (!Take(1, &bytes)) return false;
        out->append(bytes[0] ? "true" : "false");
        return true;
      case Node::kInt: {
        int32_t i = 0;
        if (!Int(&i)) return false;
        if (node->logical == Node::kDate)
          AppendText(DateOfDays(i), out);
        else if (node->logical == Node::kTimeMillis)
          AppendJsonString(TimeOfDay(i, 1000), out);
        else
          AppendInteger(i, out);
        return true;
      }
      case Node::kLong: {
        int64_t i = 0;
        if (!Long(&i)) return false;
        switch (node->logical) {
          case Node::kTimestampMillis:
            AppendTimestamp(i, 1000, true, out);
            break;
          case Node::kTimestampMicros:
            AppendTimestamp(i, 1000000, true, out);
            break;
          // A wall-clock time in no zone: without the +00 (timestamptz reads it in the session's zone).
          case Node::kLocalTimestampMillis:
            AppendTimestamp(i, 1000, false, out);
            break;
          case Node::kLocalTimestampMicros:
            AppendTimestamp(i, 1000000, false, out);
            break;
          case Node::kTimeMicros:
            AppendJsonString(TimeOfDay(i, 1000000), out);
            break;
          default:
            AppendInteger(i, out);
        }
        return true;
      }
      case Node::kFloat: {
        if (!Take(4, &bytes)) return false;
        float f = 0;
        std::memcpy(&f, bytes.data(), 4);  // little-endian, as Avro writes it (and as x86 and ARM are)
        AppendFloat(f, out);
        return true;
      }
      case Node::kDouble: {
        if (!Take(8, &bytes)) return false;
        double d = 0;
        std::memcpy(&d, bytes.data(), 8);
        AppendDouble(d, out);
        return true;
      }
      case Node::kBytes:
      case Node::kFixed:
        if (!(node->kind == Node::kBytes ? Sized(&bytes) : Take(node->size, &bytes))) return false;
        if (node->logical == Node::kDecimal && bytes.size() <= 1024)
          AppendDecimal(bytes, node->scale, out);
        else
          AppendBase64String(bytes, out);
        return true;
      case Node::kString:
        return Text("a string", out);
      case Node::kEnum: {
        int64_t n = 0;
        if (!Long(&n)) return false;
        if (n < 0 || n >= static_cast<int64_t>(node->symbols.size()))
          return Bad("enum symbol " + std::to_string(n) + " is not in the schema");
        AppendJsonString(node->symbols[static_cast<size_t>(n)], out);
        return true;
      }
      case Node::kUnion: {
        int64_t n = 0;
        if (!Long(&n)) return false;
        if (n < 0 || static_cast<size_t>(n) >= node->children.size())
          return Bad("union branch " + std::to_string(n) + " is not in the schema");
        return Value(node->children[static_cast<size_t>(n)], depth + 1, out);
      }
      case Node::kArray:
      case Node::kMap: {
        bool map = node->kind == Node::kMap;
        out->push_back(map ? '{' : '[');
        bool first = true;
        for (;;) {
          int64_t count = 0;
          if (!Long(&count)) return false;
          if (count == 0) break;
          if (count < 0) {
            int64_t block_bytes = 0;
            if (!Long(&block_bytes) || block_bytes < 0) return Bad("a bad block size");
            count = count == INT64_MIN ? INT64_MAX : -count;
          }
          if (static_cast<uint64_t>(count) > items_left_)
            return Bad("more items than a record of this size can hold");
          items_left_ -= static_cast<uint64_t>(count);
          for (int64_t i = 0; i < count; ++i) {
            if (!first) out->push_back(',');
            first = false;
            if (map) {
              if (!Text("a map key", out)) return false;
              out->push_back(':');
            }
            if (!Value(node->children[0], depth + 1, out)) return false;
          }
        }
        out->push_back(map ? '}' : ']');
        return true;
      }
      case Node::kRecord: {
        out->push_back('{');
        for (size_t i = 0; i < node->children.size(); ++i) {
          if (i) out->push_back(',');
          out->append(node->field_keys[i]);
          if (!Value(node->children[i], depth + 1, out)) return false;
        }
        out->push_back('}');
        return true;
      }
    }
    return Bad("a value of an unknown type");
  }

  static void AppendTimestamp(int64_t value, int64_t per_second, bool zoned, std::string* out) {
    out->push_back('"');
    if (AppendTimestampText(value, per_second, zoned, out)) {
      out->push_back('"');
    } else {
      out->pop_back();
      out->append("null");  // outside years 1-9999: no column can hold it
    }
  }
  static void AppendDecimal(std::string_view bytes, int scale, std::string* out) {
    out->push_back('"');
    AppendDecimalText(bytes, scale, out);
    out->push_back('"');
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  uint64_t items_left_;  // a bound on array and map items, so that a datum of nulls cannot loop for ever
  std::string why_;
};

}  // namespace

Status AvroJson::ToJson(std::string_view payload, std::string* out) {
  return DatumReader(payload).Read(state_->root, out);
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
        if (n->children[b]->type == "null")
          nullable = true;
        else
          only = only ? nullptr : n->children[b];
      }
      declared += "]";
      if (only && n->children.size() <= 2) n = only;
    }
    std::string type = "jsonb";
    switch (n->logical) {
      case Node::kDecimal:
        type = "numeric";
        break;
      case Node::kDate:
        type = "date";
        break;
      case Node::kTimestampMillis:
      case Node::kTimestampMicros:
      case Node::kLocalTimestampMillis:
      case Node::kLocalTimestampMicros:
        type = "timestamptz";
        break;
      case Node::kUuid:
        type = "uuid";
        break;
      case Node::kTimeMillis:
      case Node::kTimeMicros:
        type = "text";
        break;
      case Node::kNone:
        if (n->type == "int" || n->type == "long")
          type = "bigint";
        else if (n->type == "float" || n->type == "double")
          type = "double";
        else if (n->type == "boolean")
          type = "boolean";
        else if (n->type == "string" || n->type == "enum" || n->type == "bytes" || n->type == "fixed")
          type = "text";
    }
    if (declared.empty()) declared = n->type;
    if (n->logical != Node::kNone) {
      static const char* kNames[] = {"",
                                     "decimal",
                                     "date",
                                     "time-millis",
                                     "time-micros",
                                     "timestamp-millis",
                                     "timestamp-micros",
                                     "local-timestamp-millis",
                                     "local-timestamp-micros",
                                     "uuid"};
      declared += std::string(" (") + kNames[n->logical] +
                  (n->logical == Node::kDecimal
                       ? "(" + std::to_string(n->precision) + "," + std::to_string(n->scale) + ")"
                       : "") +
                  ")";
    }
    (void)nullable;
    fields.push_back({"/" + root->field_names[i], type, declared});
  }
  return fields;
}

}  // namespace freshet
