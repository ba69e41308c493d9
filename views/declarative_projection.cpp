#include "views/declarative_projection.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

namespace freshet {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string Timestamp(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03d+00", static_cast<int>(ms % 1000));
  return buf;
}

std::string DoubleText(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

int64_t BucketStart(int64_t ms, TimeBucket bucket) {
  int64_t width = bucket == TimeBucket::kMinute ? 60000 : bucket == TimeBucket::kHour ? 3600000 : 86400000;
  return ms - ((ms % width) + width) % width;
}

// What a column reads from one event: a value inside the event's JSON, an
// envelope field ($type and $id are strings, $ts an integer), or nothing
// (absent or JSON null).
struct FieldValue {
  enum Kind { kAbsent, kJson, kString, kInteger } kind = kAbsent;
  element json;
  std::string_view string;
  int64_t integer = 0;
};

bool IsString(const FieldValue& v, std::string_view* out) {
  if (v.kind == FieldValue::kString) {
    *out = v.string;
    return true;
  }
  return v.kind == FieldValue::kJson && v.json.get_string().get(*out) == simdjson::SUCCESS;
}

// A JSON number without fraction or exponent that fits 64 bits.
bool IsInteger(const FieldValue& v, int64_t* out) {
  if (v.kind == FieldValue::kInteger) {
    *out = v.integer;
    return true;
  }
  return v.kind == FieldValue::kJson && v.json.get_int64().get(*out) == simdjson::SUCCESS;
}

bool IsNumber(const FieldValue& v, double* out) {
  if (v.kind == FieldValue::kInteger) {
    *out = static_cast<double>(v.integer);
    return true;
  }
  return v.kind == FieldValue::kJson && v.json.get_double().get(*out) == simdjson::SUCCESS;
}

const char* TypeName(const FieldValue& v) {
  switch (v.kind) {
    case FieldValue::kAbsent: return "null";
    case FieldValue::kString: return "string";
    case FieldValue::kInteger: return "number";
    case FieldValue::kJson: break;
  }
  switch (v.json.type()) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
    default: return "number";
  }
}

// The value as compact JSON text.
std::string Dump(const FieldValue& v) {
  switch (v.kind) {
    case FieldValue::kAbsent: return "null";
    case FieldValue::kString: return nlohmann::json(std::string(v.string)).dump();
    case FieldValue::kInteger: return std::to_string(v.integer);
    case FieldValue::kJson: break;
  }
  return simdjson::to_string(v.json);
}

// The text form of a present `v` for a column of `sql_type` (what COPY
// expects) into `out`, or an error naming the column when the event's field
// has the wrong type.
Status ColumnText(const FieldValue& v, const std::string& sql_type, const std::string& column, std::string* out) {
  auto wrong = [&](const char* expected) {
    return Status::InvalidArgument("column " + column + ": expected " + expected + ", got " + TypeName(v) + " " +
                                   Dump(v));
  };
  std::string_view text;
  int64_t integer = 0;
  double number = 0;
  if (sql_type == "text") {
    if (IsString(v, &text)) out->assign(text);
    else *out = Dump(v);
    return Status::Ok();
  }
  if (sql_type == "bigint") {
    if (IsInteger(v, &integer)) {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof(buf), integer);
      out->assign(buf, r.ptr);
      return Status::Ok();
    }
    if (v.kind == FieldValue::kJson && v.json.type() == element_type::DOUBLE && IsNumber(v, &number) &&
        std::floor(number) == number && std::abs(number) < 9.2e18) {
      *out = std::to_string(static_cast<int64_t>(number));
      return Status::Ok();
    }
    return wrong("an integer");
  }
  if (sql_type == "double precision") {
    if (!IsNumber(v, &number)) return wrong("a number");
    *out = DoubleText(number);
    return Status::Ok();
  }
  if (sql_type == "boolean") {
    bool b = false;
    if (v.kind != FieldValue::kJson || v.json.get_bool().get(b) != simdjson::SUCCESS) return wrong("true or false");
    *out = b ? "true" : "false";
    return Status::Ok();
  }
  if (sql_type == "timestamptz") {
    if (IsInteger(v, &integer)) *out = Timestamp(integer);
    else if (IsString(v, &text)) out->assign(text);
    else return wrong("milliseconds since the epoch or a timestamp string");
    return Status::Ok();
  }
  *out = Dump(v);  // jsonb
  return Status::Ok();
}

// The entries of `map` ordered by key.
template <class Map>
std::vector<typename Map::value_type*> SortedByKey(Map& map) {
  std::vector<typename Map::value_type*> entries;
  entries.reserve(map.size());
  for (auto& entry : map) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  return entries;
}

}  // namespace

namespace declarative {

struct Decoder {
  // Reused: it keeps its buffers, so parsing allocates nothing per event.
  simdjson::dom::parser parser;
};

struct ParsedEvent {
  std::string_view type, id;
  int64_t ts_ms = 0;
  element data;  // an object
  int32_t partition = -1;
  int64_t offset = -1;
};

}  // namespace declarative

namespace {

FieldValue Source(const declarative::ParsedEvent& e, const declarative::FieldPath& path) {
  using declarative::FieldPath;
  FieldValue out;
  switch (path.kind) {
    case FieldPath::kTs: out.kind = FieldValue::kInteger, out.integer = e.ts_ms; return out;
    case FieldPath::kType: out.kind = FieldValue::kString, out.string = e.type; return out;
    case FieldPath::kId: out.kind = FieldValue::kString, out.string = e.id; return out;
    case FieldPath::kData: break;
  }
  element v = e.data;
  for (const std::string& segment : path.segments) {
    if (v.is_object()) {
      if (v.get_object().value_unsafe().at_key(segment).get(v) != simdjson::SUCCESS) return out;
    } else if (v.is_array()) {
      size_t index = 0;
      auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (error != std::errc() || end != segment.data() + segment.size()) return out;
      if (v.get_array().value_unsafe().at(index).get(v) != simdjson::SUCCESS) return out;
    } else {
      return out;
    }
  }
  if (v.is_null()) return out;
  out.kind = FieldValue::kJson;
  out.json = v;
  return out;
}

}  // namespace

DeclarativeProjection::FieldPath DeclarativeProjection::ParsePath(const std::string& from) {
  FieldPath path;
  if (from == "$ts") path.kind = FieldPath::kTs;
  else if (from == "$type") path.kind = FieldPath::kType;
  else if (from == "$id") path.kind = FieldPath::kId;
  else {
    // A JSON pointer (RFC 6901), validated by ParseViewSpecs: "/a/b".
    for (size_t start = 1; start <= from.size();) {
      size_t slash = from.find('/', start);
      std::string segment = from.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      std::string unescaped;
      for (size_t i = 0; i < segment.size(); ++i) {
        if (segment[i] == '~' && i + 1 < segment.size()) unescaped += segment[++i] == '1' ? '/' : '~';
        else unescaped += segment[i];
      }
      path.segments.push_back(std::move(unescaped));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  }
  return path;
}

bool DeclarativeProjection::Matches(const Parsed& e) const {
  const Where& w = *where_;
  FieldValue v = Source(e, w.path);
  if (v.kind == FieldValue::kAbsent) return false;
  int cmp = 0;
  double number = 0;
  std::string_view text;
  if (w.number && IsNumber(v, &number)) {
    cmp = number < *w.number ? -1 : number > *w.number ? 1 : 0;
  } else if (w.text && IsString(v, &text)) {
    int c = text.compare(*w.text);
    cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
  } else {
    // Other types compare as JSON values, for = and != only.
    if (w.op != Where::kEq && w.op != Where::kNe) return false;
    bool equal = nlohmann::json::parse(Dump(v)) == w.value;
    return w.op == Where::kEq ? equal : !equal;
  }
  switch (w.op) {
    case Where::kEq: return cmp == 0;
    case Where::kNe: return cmp != 0;
    case Where::kLt: return cmp < 0;
    case Where::kLe: return cmp <= 0;
    case Where::kGt: return cmp > 0;
    case Where::kGe: return cmp >= 0;
  }
  return false;
}

Status DeclarativeProjection::KeyOf(const Parsed& e) {
  joined_.clear();
  for (size_t i = 0; i < spec_.key_columns.size(); ++i) {
    const auto& c = spec_.key_columns[i];
    FieldValue v = Source(e, key_paths_[i]);
    if (v.kind == FieldValue::kAbsent) return Status::InvalidArgument("key column " + c.name + ": event has no " + c.from);
    if (c.bucket != TimeBucket::kNone) {
      int64_t ms = 0;
      if (!IsInteger(v, &ms))
        return Status::InvalidArgument("key column " + c.name + ": expected milliseconds since the epoch, got " +
                                       TypeName(v) + " " + Dump(v));
      v.kind = FieldValue::kInteger;
      v.integer = BucketStart(ms, c.bucket);
    }
    FRESHET_RETURN_IF_ERROR(ColumnText(v, c.sql_type, c.name, &key_texts_[i]));
    joined_.append(key_texts_[i]);
    joined_.push_back('\x1f');
  }
  return Status::Ok();
}

DeclarativeProjection::DeclarativeProjection(ViewSpec spec)
    : spec_(std::move(spec)), decoder_(std::make_unique<declarative::Decoder>()) {
  table_.view_name = spec_.name;
  table_.version = spec_.version;
  std::string select;
  for (const auto& c : spec_.key_columns) {
    table_.key_columns.push_back({c.name, c.sql_type, Merge::kReplace});
    select += (select.empty() ? "" : ", ") + std::string("\"") + c.name + "\"";
  }
  for (const auto& c : spec_.value_columns) {
    switch (c.fn) {
      case AggregateFn::kNone: table_.value_columns.push_back({c.name, c.sql_type, Merge::kReplace}); break;
      case AggregateFn::kCount:
      case AggregateFn::kSum: table_.value_columns.push_back({c.name, c.sql_type, Merge::kAdd}); break;
      case AggregateFn::kMin: table_.value_columns.push_back({c.name, c.sql_type, Merge::kMin}); break;
      case AggregateFn::kMax: table_.value_columns.push_back({c.name, c.sql_type, Merge::kMax}); break;
      case AggregateFn::kAvg:
        // Stored as sum and count so that partial windows merge exactly.
        table_.value_columns.push_back({c.name + "__sum", "double precision", Merge::kAdd});
        table_.value_columns.push_back({c.name + "__count", "bigint", Merge::kAdd});
        select += ", \"" + c.name + "__sum\" / NULLIF(\"" + c.name + "__count\", 0) AS \"" + c.name + "\"";
        continue;
    }
    select += ", \"" + c.name + "\"";
  }
  table_.view_select = select;
  // JSON pointers are split once here, not per event and column.
  for (const auto& c : spec_.key_columns) key_paths_.push_back(ParsePath(c.from));
  for (const auto& c : spec_.value_columns) value_paths_.push_back(c.from.empty() ? FieldPath() : ParsePath(c.from));
  key_texts_.resize(spec_.key_columns.size());
  inputs_.resize(spec_.value_columns.size());
  if (spec_.where) {
    Where w;
    w.path = ParsePath(spec_.where->field);
    const std::string& op = spec_.where->op;
    w.op = op == "=" ? Where::kEq : op == "!=" ? Where::kNe : op == "<" ? Where::kLt : op == "<=" ? Where::kLe
           : op == ">" ? Where::kGt : Where::kGe;
    w.value = spec_.where->value;
    if (w.value.is_number()) w.number = w.value.get<double>();
    if (w.value.is_string()) w.text = w.value.get<std::string>();
    where_ = std::move(w);
  }
}

DeclarativeProjection::~DeclarativeProjection() = default;

Status DeclarativeProjection::Apply(const Event& event) {
  int64_t ts_ms = 0;
  return ApplyValue(EncodeEventValue(event), event.partition, event.offset, &ts_ms);
}

Status DeclarativeProjection::ApplyValue(std::string_view value, int32_t partition, int64_t offset, int64_t* ts_ms) {
  // The same checks, in the same order and words, as DecodeEventValue.
  element root;
  if (decoder_->parser.parse(value.data(), value.size()).get(root) != simdjson::SUCCESS)
    return Status::InvalidArgument("event value is not valid JSON");
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS)
    return Status::InvalidArgument("event value is not a JSON object");
  Parsed e;
  if (object.at_key("type").get_string().get(e.type) != simdjson::SUCCESS)
    return Status::InvalidArgument("event.type: missing or not a string");
  element field;
  if (object.at_key("id").get(field) == simdjson::SUCCESS && field.get_string().get(e.id) != simdjson::SUCCESS)
    return Status::InvalidArgument("event.id: not a string");
  if (object.at_key("ts").get(field) == simdjson::SUCCESS) {
    uint64_t unsigned_ts = 0;
    if (field.get_int64().get(e.ts_ms) != simdjson::SUCCESS) {
      if (field.get_uint64().get(unsigned_ts) != simdjson::SUCCESS)
        return Status::InvalidArgument("event.ts: not an integer");
      e.ts_ms = static_cast<int64_t>(unsigned_ts);
    }
  }
  if (object.at_key("data").get(e.data) != simdjson::SUCCESS || !e.data.is_object())
    return Status::InvalidArgument("event.data: missing or not an object");
  e.partition = partition;
  e.offset = offset;
  *ts_ms = e.ts_ms;
  return ApplyParsed(e);
}

Status DeclarativeProjection::ApplyParsed(const Parsed& event) {
  bool deletes = spec_.delete_on.count(event.type) > 0;
  if (!deletes && !spec_.event_types.empty() && !spec_.event_types.count(event.type)) return Status::Ok();
  FRESHET_RETURN_IF_ERROR(KeyOf(event));

  if (spec_.kind == ViewKind::kLatest) {
    RowWrite row;
    row.partition = event.partition;
    row.offset = event.offset;
    if (!deletes) {
      // Columns first: an event with a mistyped field is a bad event, not
      // one that "does not match" and silently removes the row.
      for (size_t i = 0; i < spec_.value_columns.size(); ++i) {
        const auto& c = spec_.value_columns[i];
        FieldValue v = Source(event, value_paths_[i]);
        if (v.kind == FieldValue::kAbsent) {
          row.values.emplace_back();
          continue;
        }
        std::string text;
        FRESHET_RETURN_IF_ERROR(ColumnText(v, c.sql_type, c.name, &text));
        row.values.emplace_back(std::move(text));
      }
    }
    // A row that stops matching `where` leaves the view.
    if (deletes || (where_ && !Matches(event))) {
      row.deleted = true;
      row.values.clear();
    }
    row.key = key_texts_;
    kind_latest_[joined_] = std::move(row);
    return Status::Ok();
  }

  if (where_ && !Matches(event)) return Status::Ok();
  // Read every input first so that a bad event changes nothing.
  for (size_t i = 0; i < spec_.value_columns.size(); ++i) {
    const auto& c = spec_.value_columns[i];
    inputs_[i].reset();
    if (c.fn == AggregateFn::kCount) continue;
    FieldValue v = Source(event, value_paths_[i]);
    if (v.kind == FieldValue::kAbsent) continue;
    double x = 0;
    if (!IsNumber(v, &x))
      return Status::InvalidArgument("aggregate " + c.name + ": " + c.from + " is " + TypeName(v) + ", not a number");
    inputs_[i] = x;
  }
  auto [it, inserted] = aggregates_.try_emplace(joined_);
  Group& g = it->second;
  if (inserted) {
    g.key = key_texts_;
    g.partials.resize(spec_.value_columns.size());
  }
  g.partition = event.partition;
  g.offset = event.offset;
  for (size_t i = 0; i < spec_.value_columns.size(); ++i) {
    Partial& p = g.partials[i];
    if (spec_.value_columns[i].fn == AggregateFn::kCount) {
      ++p.count;
      continue;
    }
    if (!inputs_[i]) continue;
    double x = *inputs_[i];
    p.sum += x;
    ++p.count;
    p.min = p.min ? std::min(*p.min, x) : x;
    p.max = p.max ? std::max(*p.max, x) : x;
  }
  return Status::Ok();
}

std::vector<RowWrite> DeclarativeProjection::TakePending() {
  std::vector<RowWrite> rows;
  if (spec_.kind == ViewKind::kLatest) {
    rows.reserve(kind_latest_.size());
    for (auto* entry : SortedByKey(kind_latest_)) rows.push_back(std::move(entry->second));
    kind_latest_.clear();
    return rows;
  }
  rows.reserve(aggregates_.size());
  for (auto* entry : SortedByKey(aggregates_)) {
    Group& g = entry->second;
    RowWrite row;
    row.key = std::move(g.key);
    row.partition = g.partition;
    row.offset = g.offset;
    for (size_t i = 0; i < spec_.value_columns.size(); ++i) {
      const Partial& p = g.partials[i];
      switch (spec_.value_columns[i].fn) {
        case AggregateFn::kCount: row.values.emplace_back(std::to_string(p.count)); break;
        case AggregateFn::kSum:
          row.values.emplace_back(spec_.value_columns[i].sql_type == "bigint" ? std::to_string(std::llround(p.sum))
                                                                              : DoubleText(p.sum));
          break;
        case AggregateFn::kMin: row.values.push_back(p.min ? std::optional(DoubleText(*p.min)) : std::nullopt); break;
        case AggregateFn::kMax: row.values.push_back(p.max ? std::optional(DoubleText(*p.max)) : std::nullopt); break;
        case AggregateFn::kAvg:
          row.values.emplace_back(DoubleText(p.sum));
          row.values.emplace_back(std::to_string(p.count));
          break;
        case AggregateFn::kNone: row.values.emplace_back(); break;
      }
    }
    rows.push_back(std::move(row));
  }
  aggregates_.clear();
  return rows;
}

}  // namespace freshet
