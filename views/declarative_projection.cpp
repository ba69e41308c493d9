#include "views/declarative_projection.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <optional>

#include "sources/record_decoder.h"
#include "sources/value_text.h"

namespace freshet {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Years 1 to 9999, which every store and client can hold; seconds since the epoch.
constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01 00:00:00
constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31 23:59:59

std::string DoubleText(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// `ms` must be within years 1-9999 (no overflow).
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
  const LogicalField* logical = nullptr;  // how Debezium encoded it, if known
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
    case FieldValue::kAbsent:
      return "null";
    case FieldValue::kString:
      return "string";
    case FieldValue::kInteger:
      return "number";
    case FieldValue::kJson:
      break;
  }
  switch (v.json.type()) {
    case element_type::ARRAY:
      return "array";
    case element_type::OBJECT:
      return "object";
    case element_type::STRING:
      return "string";
    case element_type::BOOL:
      return "boolean";
    case element_type::NULL_VALUE:
      return "null";
    default:
      return "number";
  }
}

// The value as compact JSON text.
std::string Dump(const FieldValue& v) {
  switch (v.kind) {
    case FieldValue::kAbsent:
      return "null";
    // $key and $header.NAME are raw bytes: not always UTF-8.
    case FieldValue::kString:
      return nlohmann::json(std::string(v.string))
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    case FieldValue::kInteger:
      return std::to_string(v.integer);
    case FieldValue::kJson:
      break;
  }
  return simdjson::to_string(v.json);
}

// Standard base64 (with or without padding) into bytes; false if not base64.
bool DecodeBase64(std::string_view in, std::string* out) {
  out->clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return true;
}

// The text form of a present `v` for a column of `sql_type` (what COPY
// expects) into `out`, or an error naming the column when the event's field
// has the wrong type.
Status ColumnText(const FieldValue& v, const std::string& sql_type, const std::string& column,
                  std::string* out) {
  auto wrong = [&](const char* expected) {
    return Status::InvalidArgument("column " + column + ": expected " + expected + ", got " + TypeName(v) +
                                   " " + Dump(v));
  };
  std::string_view text;
  int64_t integer = 0;
  double number = 0;
  if (const LogicalField* logical = v.logical) {
    // Debezium's encodings, named by the schema it sent along.
    std::string bytes;
    if (logical->type == LogicalType::kDecimal && IsString(v, &text) && DecodeBase64(text, &bytes)) {
      // Postgres keeps at most 16,383 digits after the point; the digits are
      // computed in quadratic time: bound both.
      if (logical->scale < -1000 || logical->scale > 16383 || bytes.size() > 1024)
        return wrong("a Decimal of at most 1,024 bytes with a scale from -1000 to 16383");
      std::string decimal = DecimalText(bytes, logical->scale);
      if (sql_type == "bigint" && decimal.find('.') != std::string::npos) return wrong("an integer");
      if (sql_type == "boolean" || sql_type == "date" || sql_type == "uuid" || sql_type == "timestamptz")
        return wrong("a value of its type, not a decimal");
      *out = sql_type == "jsonb" ? "\"" + decimal + "\"" : decimal;
      return Status::Ok();
    }
    int64_t per_second = logical->type == LogicalType::kTimestampMillis   ? 1000
                         : logical->type == LogicalType::kTimestampMicros ? 1000000
                         : logical->type == LogicalType::kTimestampNanos  ? 1000000000
                                                                          : 0;
    if (per_second && IsInteger(v, &integer) && (sql_type == "timestamptz" || sql_type == "text")) {
      auto ts = TimestampOf(integer, per_second);
      if (!ts) return wrong("a time within the years 1 to 9999");
      *out = std::move(*ts);
      return Status::Ok();
    }
    if (logical->type == LogicalType::kDate && IsInteger(v, &integer) &&
        (sql_type == "date" || sql_type == "text" || sql_type == "timestamptz")) {
      auto date = DateOfDays(integer);
      if (!date) return wrong("a date within the years 1 to 9999");
      *out = sql_type == "timestamptz" ? *date + " 00:00:00+00" : *date;
      return Status::Ok();
    }
  }
  if (sql_type == "text") {
    if (IsString(v, &text))
      out->assign(text);
    else
      *out = Dump(v);
    // COPY would fail the whole batch over one such value. Only the raw
    // strings ($key, headers) need a UTF-8 check: simdjson validated the rest.
    if (out->find('\0') != std::string::npos)
      return Status::InvalidArgument("column " + column +
                                     ": text with a NUL character, which Postgres cannot store");
    if (v.kind == FieldValue::kString && !simdjson::validate_utf8(out->data(), out->size()))
      return Status::InvalidArgument("column " + column + ": not valid UTF-8: " + Dump(v));
    return Status::Ok();
  }
  if (sql_type == "numeric") {
    if (IsInteger(v, &integer)) {
      *out = std::to_string(integer);
    } else if (v.kind == FieldValue::kJson && v.json.is_number()) {
      *out = simdjson::to_string(v.json);
    } else if (IsString(v, &text) && IsDecimalText(text)) {
      out->assign(text);
    } else {
      return wrong("a number or a decimal string");
    }
    return Status::Ok();
  }
  if (sql_type == "date") {
    if (!IsString(v, &text) || !IsDateText(text)) return wrong("a date YYYY-MM-DD");
    out->assign(text);
    return Status::Ok();
  }
  if (sql_type == "uuid") {
    if (!IsString(v, &text) || !IsUuidText(text))
      return wrong("a UUID like 123e4567-e89b-12d3-a456-426614174000");
    out->assign(text);
    return Status::Ok();
  }
  if (sql_type == "bigint") {
    // $key and $header.NAME are text: "12345" is an integer there.
    if (v.kind == FieldValue::kString) {
      auto [end, error] = std::from_chars(v.string.data(), v.string.data() + v.string.size(), integer);
      if (error == std::errc() && end == v.string.data() + v.string.size() && !v.string.empty()) {
        *out = std::string(v.string);
        return Status::Ok();
      }
    }
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
    if (v.kind != FieldValue::kJson || v.json.get_bool().get(b) != simdjson::SUCCESS)
      return wrong("true or false");
    *out = b ? "true" : "false";
    return Status::Ok();
  }
  if (sql_type == "timestamptz") {
    if (IsInteger(v, &integer)) {
      auto ts = TimestampOf(integer, 1000);
      if (!ts) return wrong("milliseconds since the epoch within the years 1 to 9999");
      *out = std::move(*ts);
    } else if (IsString(v, &text) && StartsWithDateText(text))
      out->assign(text);
    else
      return wrong("milliseconds since the epoch or a timestamp string");
    return Status::Ok();
  }
  *out = Dump(v);  // jsonb
  if (out->find("\\u0000") != std::string::npos)
    return Status::InvalidArgument("column " + column +
                                   ": JSON with \\u0000, which Postgres jsonb cannot store");
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

namespace {

// What `path` reads from `e`.
FieldValue Source(const SourceRecord& e, const FieldRef& path) {
  FieldValue out;
  switch (path.kind) {
    case FieldRef::kTs:
      out.kind = FieldValue::kInteger, out.integer = e.ts_ms;
      return out;
    case FieldRef::kType:
      out.kind = FieldValue::kString, out.string = e.type;
      return out;
    case FieldRef::kId:
      if (!e.id.empty()) out.kind = FieldValue::kString, out.string = e.id;
      return out;
    case FieldRef::kKey:
      if (e.key_text)
        out.kind = FieldValue::kString, out.string = *e.key_text;  // decoded (key_format)
      else if (e.raw->key)
        out.kind = FieldValue::kString, out.string = *e.raw->key;
      return out;
    case FieldRef::kTopic:
      out.kind = FieldValue::kString, out.string = e.raw->topic;
      return out;
    case FieldRef::kPartition:
      out.kind = FieldValue::kInteger, out.integer = e.raw->partition;
      return out;
    case FieldRef::kOffset:
      out.kind = FieldValue::kInteger, out.integer = e.raw->offset;
      return out;
    case FieldRef::kHeader:
      if (auto h = e.raw->Header(path.text)) out.kind = FieldValue::kString, out.string = *h;
      return out;
    case FieldRef::kConstant:
      return out;
    case FieldRef::kData:
    case FieldRef::kKeyPointer:
      break;
  }
  if (!FindElement(e, path, &out.json)) return out;
  out.kind = FieldValue::kJson;
  if (path.kind == FieldRef::kData && path.segments.size() == 1) out.logical = e.Logical(path.segments[0]);
  return out;
}

// The start of the time bucket `v` (milliseconds since the epoch) falls in.
Status Bucket(const SpecColumn& c, FieldValue* v) {
  int64_t ms = 0;
  if (!IsInteger(*v, &ms))
    return Status::InvalidArgument("column " + c.name + ": expected milliseconds since the epoch, got " +
                                   TypeName(*v) + " " + Dump(*v));
  if (ms / 1000 < kMinSeconds || ms / 1000 > kMaxSeconds)
    return Status::InvalidArgument("column " + c.name + ": " + std::to_string(ms) +
                                   " ms is not within the years 1 to 9999");
  v->kind = FieldValue::kInteger;
  v->integer = BucketStart(ms, c.bucket);
  return Status::Ok();
}

// A reference that ParseViewSpecs validated.
FieldRef ParsePath(const std::string& from) {
  auto ref = ParseFieldRef(from, "from");
  return ref.ok() ? ref.value() : FieldRef();
}

}  // namespace

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
    bool equal = nlohmann::json::parse(Dump(v), nullptr, false) == w.value;
    return w.op == Where::kEq ? equal : !equal;
  }
  switch (w.op) {
    case Where::kEq:
      return cmp == 0;
    case Where::kNe:
      return cmp != 0;
    case Where::kLt:
      return cmp < 0;
    case Where::kLe:
      return cmp <= 0;
    case Where::kGt:
      return cmp > 0;
    case Where::kGe:
      return cmp >= 0;
  }
  return false;
}

Status DeclarativeProjection::KeyOf(const Parsed& e) {
  joined_.clear();
  for (size_t i = 0; i < spec_.key_columns.size(); ++i) {
    const auto& c = spec_.key_columns[i];
    FieldValue v = Source(e, key_paths_[i]);
    if (v.kind == FieldValue::kAbsent)
      return Status::InvalidArgument("key column " + c.name + ": event has no " + c.from);
    if (c.bucket != TimeBucket::kNone) FRESHET_RETURN_IF_ERROR(Bucket(c, &v));
    FRESHET_RETURN_IF_ERROR(ColumnText(v, c.sql_type, c.name, &key_texts_[i]));
    joined_.append(key_texts_[i]);
    joined_.push_back('\x1f');
  }
  return Status::Ok();
}

DeclarativeProjection::DeclarativeProjection(ViewSpec spec)
    : spec_(std::move(spec)), decoder_(std::make_unique<RecordDecoder>(spec_.source, false)) {
  table_.view_name = spec_.name;
  table_.version = spec_.version;
  std::string aggregate_select;
  if (spec_.kind == ViewKind::kAggregate && spec_.source.changelog()) {
    // An aggregate over a changelog must take back what a replaced or
    // deleted row contributed. The table keeps one row per source row (its
    // Kafka key) with its groups and inputs, as a latest view would, and the
    // SQL view aggregates them: exact after any upserts and deletes, paid
    // for when it is read.
    ViewSpec rows = spec_;
    rows.kind = ViewKind::kLatest;
    rows.key_columns = {SpecColumn{"__row", "text", "$key", AggregateFn::kNone, TimeBucket::kNone}};
    rows.value_columns.clear();
    std::string group;
    for (const auto& g : spec_.key_columns) {
      rows.value_columns.push_back(g);
      std::string quoted = "\"" + g.name + "\"";
      aggregate_select += (aggregate_select.empty() ? "" : ", ") + quoted;
      group += (group.empty() ? "" : ", ") + quoted;
    }
    for (const auto& a : spec_.value_columns) {
      std::string input = "\"__in_" + a.name + "\"", as = " AS \"" + a.name + "\"";
      if (a.fn != AggregateFn::kCount)
        rows.value_columns.push_back(SpecColumn{"__in_" + a.name,
                                                a.sql_type == "bigint" ? "bigint" : "double precision",
                                                a.from, AggregateFn::kNone, TimeBucket::kNone});
      switch (a.fn) {
        case AggregateFn::kCount:
          aggregate_select += ", count(*)" + as;
          break;
        case AggregateFn::kSum:
          aggregate_select += ", coalesce(sum(" + input +
                              "), 0)::" + (a.sql_type == "bigint" ? "bigint" : "double precision") + as;
          break;
        case AggregateFn::kMin:
          aggregate_select += ", min(" + input + ")" + as;
          break;
        case AggregateFn::kMax:
          aggregate_select += ", max(" + input + ")" + as;
          break;
        case AggregateFn::kAvg:
          aggregate_select += ", avg(" + input + ")" + as;
          break;
        case AggregateFn::kNone:
          break;
      }
    }
    table_.view_group_by = group;
    spec_ = std::move(rows);
  }
  std::string select;
  for (const auto& c : spec_.key_columns) {
    table_.key_columns.push_back({c.name, c.sql_type, Merge::kReplace});
    select += (select.empty() ? "" : ", ") + std::string("\"") + c.name + "\"";
  }
  for (const auto& c : spec_.value_columns) {
    switch (c.fn) {
      case AggregateFn::kNone:
        table_.value_columns.push_back({c.name, c.sql_type, Merge::kReplace});
        break;
      case AggregateFn::kCount:
      case AggregateFn::kSum:
        table_.value_columns.push_back({c.name, c.sql_type, Merge::kAdd});
        break;
      case AggregateFn::kMin:
        table_.value_columns.push_back({c.name, c.sql_type, Merge::kMin});
        break;
      case AggregateFn::kMax:
        table_.value_columns.push_back({c.name, c.sql_type, Merge::kMax});
        break;
      case AggregateFn::kAvg:
        // Stored as sum and count so that partial windows merge exactly.
        table_.value_columns.push_back({c.name + "__sum", "double precision", Merge::kAdd});
        table_.value_columns.push_back({c.name + "__count", "bigint", Merge::kAdd});
        select += ", \"" + c.name + "__sum\" / NULLIF(\"" + c.name + "__count\", 0) AS \"" + c.name + "\"";
        continue;
    }
    select += ", \"" + c.name + "\"";
  }
  table_.view_select = aggregate_select.empty() ? select : aggregate_select;
  // JSON pointers are split once here, not per event and column.
  for (const auto& c : spec_.key_columns) key_paths_.push_back(ParsePath(c.from));
  for (const auto& c : spec_.value_columns)
    value_paths_.push_back(c.from.empty() ? FieldPath() : ParsePath(c.from));
  key_texts_.resize(spec_.key_columns.size());
  inputs_.resize(spec_.value_columns.size());
  if (spec_.where) {
    Where w;
    w.path = ParsePath(spec_.where->field);
    const std::string& op = spec_.where->op;
    w.op = op == "="    ? Where::kEq
           : op == "!=" ? Where::kNe
           : op == "<"  ? Where::kLt
           : op == "<=" ? Where::kLe
           : op == ">"  ? Where::kGt
                        : Where::kGe;
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

Status DeclarativeProjection::ApplyValue(std::string_view value, int32_t partition, int64_t offset,
                                         int64_t* ts_ms) {
  RawRecord raw;
  raw.partition = partition;
  raw.offset = offset;
  raw.value = value;
  SourceRecord record;
  FRESHET_RETURN_IF_ERROR(decoder_->Decode(raw, &record));
  *ts_ms = record.ts_ms;
  if (record.change == SourceRecord::Change::kSkip) return Status::Ok();
  return ApplyParsed(record);
}

Status DeclarativeProjection::ApplyRecord(const SourceRecord& record) { return ApplyParsed(record); }

Status DeclarativeProjection::ApplyParsed(const Parsed& event) {
  bool deletes = event.change == SourceRecord::Change::kDelete || spec_.delete_on.count(event.type) > 0;
  if (!deletes && !spec_.event_types.empty() && !spec_.event_types.count(event.type)) return Status::Ok();
  FRESHET_RETURN_IF_ERROR(KeyOf(event));
  if (separate_partitions_) {
    // After the key's '\x1f': the shares of one key stay together, sorted.
    uint32_t p = static_cast<uint32_t>(event.raw->partition);
    for (int shift = 24; shift >= 0; shift -= 8) joined_.push_back(static_cast<char>((p >> shift) & 0xff));
  }

  if (spec_.kind == ViewKind::kLatest) {
    RowWrite row;
    row.partition = event.raw->partition;
    row.offset = event.raw->offset;
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
        if (c.bucket != TimeBucket::kNone) FRESHET_RETURN_IF_ERROR(Bucket(c, &v));
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

  if (event.change == SourceRecord::Change::kDelete)  // ParseViewSpecs refuses such sources
    return Status::InvalidArgument("an aggregate cannot retract a deleted row");
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
      return Status::InvalidArgument("aggregate " + c.name + ": " + c.from + " is " + TypeName(v) +
                                     ", not a number");
    inputs_[i] = x;
  }
  auto [it, inserted] = aggregates_.try_emplace(joined_);
  Group& g = it->second;
  if (inserted) {
    g.key = key_texts_;
    g.partials.resize(spec_.value_columns.size());
  }
  g.partition = event.raw->partition;
  g.offset = event.raw->offset;
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
        case AggregateFn::kCount:
          row.values.emplace_back(std::to_string(p.count));
          break;
        case AggregateFn::kSum:
          row.values.emplace_back(spec_.value_columns[i].sql_type == "bigint"
                                      ? std::to_string(std::llround(p.sum))
                                      : DoubleText(p.sum));
          break;
        case AggregateFn::kMin:
          row.values.push_back(p.min ? std::optional(DoubleText(*p.min)) : std::nullopt);
          break;
        case AggregateFn::kMax:
          row.values.push_back(p.max ? std::optional(DoubleText(*p.max)) : std::nullopt);
          break;
        case AggregateFn::kAvg:
          row.values.emplace_back(DoubleText(p.sum));
          row.values.emplace_back(std::to_string(p.count));
          break;
        case AggregateFn::kNone:
          row.values.emplace_back();
          break;
      }
    }
    rows.push_back(std::move(row));
  }
  aggregates_.clear();
  return rows;
}

}  // namespace freshet
