#include "views/declarative_projection.h"

#include <charconv>
#include <cmath>
#include <ctime>

namespace freshet {
namespace {

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

const nlohmann::json* DeclarativeProjection::Source(const Event& e, const std::string& from,
                                                    nlohmann::json* storage) const {
  // Parsed once per column at construction: building a json_pointer per
  // event and column showed in the views profile.
  const FieldPath& path = paths_.at(from);
  switch (path.kind) {
    case FieldPath::kTs: return &(*storage = e.ts_ms);
    case FieldPath::kType: return &(*storage = e.type);
    case FieldPath::kId: return &(*storage = e.id);
    case FieldPath::kData: break;
  }
  const nlohmann::json* v = &e.data;
  for (const std::string& segment : path.segments) {
    if (v->is_object()) {
      auto it = v->find(segment);
      if (it == v->end()) return nullptr;
      v = &*it;
    } else if (v->is_array()) {
      size_t index = 0;
      auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (error != std::errc() || end != segment.data() + segment.size() || index >= v->size()) return nullptr;
      v = &(*v)[index];
    } else {
      return nullptr;
    }
  }
  return v->is_null() ? nullptr : v;
}

bool DeclarativeProjection::Matches(const Predicate& p, const Event& e) const {
  nlohmann::json storage;
  const nlohmann::json* v = Source(e, p.field, &storage);
  if (!v) return false;
  int cmp;
  if (v->is_number() && p.value.is_number()) {
    double a = v->get<double>(), b = p.value.get<double>();
    cmp = a < b ? -1 : a > b ? 1 : 0;
  } else if (v->is_string() && p.value.is_string()) {
    cmp = v->get<std::string>().compare(p.value.get<std::string>());
  } else {
    if (p.op == "=") return *v == p.value;
    if (p.op == "!=") return *v != p.value;
    return false;
  }
  if (p.op == "=") return cmp == 0;
  if (p.op == "!=") return cmp != 0;
  if (p.op == "<") return cmp < 0;
  if (p.op == "<=") return cmp <= 0;
  if (p.op == ">") return cmp > 0;
  return cmp >= 0;
}

Result<std::vector<std::string>> DeclarativeProjection::KeyOf(const Event& e, std::string* joined) const {
  std::vector<std::string> key;
  joined->clear();
  for (const auto& c : spec_.key_columns) {
    nlohmann::json storage;
    const nlohmann::json* v = Source(e, c.from, &storage);
    if (!v) return Status::InvalidArgument("key column " + c.name + ": event has no " + c.from);
    if (c.bucket != TimeBucket::kNone) storage = BucketStart(v->get<int64_t>(), c.bucket), v = &storage;
    auto text = ColumnText(v, c.sql_type, c.name);
    if (!text.ok()) return text.status();
    key.push_back(**text);
    joined->append(key.back());
    joined->push_back('\x1f');
  }
  return key;
}

Result<std::optional<std::string>> ColumnText(const nlohmann::json* v, const std::string& sql_type,
                                              const std::string& column) {
  if (!v || v->is_null()) return std::optional<std::string>();
  auto wrong = [&](const char* expected) {
    return Status::InvalidArgument("column " + column + ": expected " + expected + ", got " + v->type_name() + " " +
                                   v->dump());
  };
  if (sql_type == "text") return std::optional<std::string>(v->is_string() ? v->get<std::string>() : v->dump());
  if (sql_type == "bigint") {
    if (v->is_number_integer()) return std::optional<std::string>(std::to_string(v->get<int64_t>()));
    if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())
      return std::optional<std::string>(std::to_string(static_cast<int64_t>(v->get<double>())));
    return wrong("an integer");
  }
  if (sql_type == "double precision") {
    if (v->is_number()) return std::optional<std::string>(DoubleText(v->get<double>()));
    return wrong("a number");
  }
  if (sql_type == "boolean") {
    if (v->is_boolean()) return std::optional<std::string>(v->get<bool>() ? "true" : "false");
    return wrong("true or false");
  }
  if (sql_type == "timestamptz") {
    if (v->is_number_integer()) return std::optional<std::string>(Timestamp(v->get<int64_t>()));
    if (v->is_string()) return std::optional<std::string>(v->get<std::string>());
    return wrong("milliseconds since the epoch or a timestamp string");
  }
  return std::optional<std::string>(v->dump());  // jsonb
}

DeclarativeProjection::DeclarativeProjection(ViewSpec spec) : spec_(std::move(spec)) {
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
  for (const auto& c : spec_.key_columns) paths_.emplace(c.from, ParsePath(c.from));
  for (const auto& c : spec_.value_columns)
    if (!c.from.empty()) paths_.emplace(c.from, ParsePath(c.from));
  if (spec_.where) paths_.emplace(spec_.where->field, ParsePath(spec_.where->field));
}

Status DeclarativeProjection::Apply(const Event& event) {
  bool deletes = spec_.delete_on.count(event.type) > 0;
  if (!deletes && !spec_.event_types.empty() && !spec_.event_types.count(event.type)) return Status::Ok();
  std::string joined;
  auto key = KeyOf(event, &joined);
  if (!key.ok()) return key.status();

  if (spec_.kind == ViewKind::kLatest) {
    RowWrite row;
    row.key = std::move(key.value());
    row.partition = event.partition;
    row.offset = event.offset;
    if (!deletes) {
      // Columns first: an event with a mistyped field is a bad event, not
      // one that "does not match" and silently removes the row.
      for (const auto& c : spec_.value_columns) {
        nlohmann::json storage;
        auto text = ColumnText(Source(event, c.from, &storage), c.sql_type, c.name);
        if (!text.ok()) return text.status();
        row.values.push_back(std::move(text.value()));
      }
    }
    // A row that stops matching `where` leaves the view.
    if (deletes || (spec_.where && !Matches(*spec_.where, event))) {
      row.deleted = true;
      row.values.clear();
    }
    kind_latest_[joined] = std::move(row);
    return Status::Ok();
  }

  if (spec_.where && !Matches(*spec_.where, event)) return Status::Ok();
  // Read every input first so that a bad event changes nothing.
  std::vector<std::optional<double>> inputs;
  for (const auto& c : spec_.value_columns) {
    if (c.fn == AggregateFn::kCount) {
      inputs.emplace_back();
      continue;
    }
    nlohmann::json storage;
    const nlohmann::json* v = Source(event, c.from, &storage);
    if (v && !v->is_number())
      return Status::InvalidArgument("aggregate " + c.name + ": " + c.from + " is " + v->type_name() + ", not a number");
    inputs.push_back(v ? std::optional<double>(v->get<double>()) : std::nullopt);
  }
  Group& g = aggregates_[joined];
  if (g.partials.empty()) {
    g.key = std::move(key.value());
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
    if (!inputs[i]) continue;
    double x = *inputs[i];
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
    for (auto& [joined, row] : kind_latest_) rows.push_back(std::move(row));
    kind_latest_.clear();
    return rows;
  }
  rows.reserve(aggregates_.size());
  for (auto& [joined, g] : aggregates_) {
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
