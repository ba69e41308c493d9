#include "views/view_spec.h"

#include <cstdio>
#include <map>

namespace freshet {
namespace {

// Definitions keep the order their columns are written in.
using SpecJson = nlohmann::ordered_json;

const std::map<std::string, std::string> kTypes = {{"text", "text"},
                                                   {"bigint", "bigint"},
                                                   {"double", "double precision"},
                                                   {"boolean", "boolean"},
                                                   {"timestamptz", "timestamptz"},
                                                   {"jsonb", "jsonb"},
                                                   {"numeric", "numeric"},
                                                   {"date", "date"},
                                                   {"uuid", "uuid"}};

Status Fail(const std::string& where, const std::string& what) {
  return Status::InvalidArgument(where + ": " + what);
}

// object[key] when it is a string, `fallback` when absent; an error naming
// the field when it is something else (nlohmann's value() would throw).
Result<std::string> StringField(const SpecJson& object, const char* key, const std::string& where,
                                const std::string& fallback) {
  auto it = object.find(key);
  if (it == object.end()) return fallback;
  if (!it->is_string()) return Fail(where + "." + key, "expected a string");
  return it->get<std::string>();
}

Status CheckKeys(const SpecJson& object, const std::string& where, const std::set<std::string>& known) {
  for (auto it = object.begin(); it != object.end(); ++it)
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Fail(where + "." + it.key(), "unknown key (known: " + list + ")");
    }
  return Status::Ok();
}

Status CheckSource(const std::string& from, const std::string& where) {
  return ParseFieldRef(from, where).status();
}

// A key/group-by/column entry: "/pointer" or {"from": ..., "type": ..., "bucket": ...}.
Result<SpecColumn> ParseColumn(const std::string& name, const SpecJson& j, const std::string& where,
                               bool allow_bucket) {
  if (!IsValidIdentifier(name))
    return Fail(where,
                "column name must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 48 characters)");
  SpecColumn c;
  c.name = name;
  if (j.is_string()) {
    c.from = j.get<std::string>();
  } else if (j.is_object()) {
    FRESHET_RETURN_IF_ERROR(CheckKeys(j, where,
                                      allow_bucket ? std::set<std::string>{"from", "type", "bucket"}
                                                   : std::set<std::string>{"from", "type"}));
    if (!j.contains("from") || !j["from"].is_string()) return Fail(where + ".from", "required string");
    c.from = j["from"].get<std::string>();
    if (j.contains("type")) {
      if (!j["type"].is_string() || !kTypes.count(j["type"].get<std::string>()))
        return Fail(where + ".type",
                    "expected one of text, bigint, double, boolean, timestamptz, jsonb, numeric, date, uuid");
      c.sql_type = kTypes.at(j["type"].get<std::string>());
    }
    if (j.contains("bucket")) {
      std::string b = j["bucket"].is_string() ? j["bucket"].get<std::string>() : "";
      if (b == "minute")
        c.bucket = TimeBucket::kMinute;
      else if (b == "hour")
        c.bucket = TimeBucket::kHour;
      else if (b == "day")
        c.bucket = TimeBucket::kDay;
      else
        return Fail(where + ".bucket", "expected minute, hour or day");
      if (c.from != "$ts") return Fail(where + ".bucket", "a time bucket needs \"from\": \"$ts\"");
      c.sql_type = "timestamptz";
    }
  } else {
    return Fail(where, "expected a JSON pointer string or an object with \"from\"");
  }
  FRESHET_RETURN_IF_ERROR(CheckSource(c.from, where + (j.is_object() ? ".from" : "")));
  if (c.from == "$ts" && c.bucket == TimeBucket::kNone && !(j.is_object() && j.contains("type")))
    c.sql_type = "timestamptz";
  return c;
}

Status ParseColumns(const SpecJson& spec, const char* key, const std::string& where, bool allow_bucket,
                    std::vector<SpecColumn>* out) {
  auto it = spec.find(key);
  if (it == spec.end() || !it->is_object() || it->empty())
    return Fail(where + "." + key, "required: an object of column name -> source");
  for (auto c = it->begin(); c != it->end(); ++c) {
    auto column = ParseColumn(c.key(), c.value(), where + "." + key + "." + c.key(), allow_bucket);
    if (!column.ok()) return column.status();
    out->push_back(std::move(column.value()));
  }
  return Status::Ok();
}

Status ParseAggregates(const SpecJson& spec, const std::string& where, std::vector<SpecColumn>* out) {
  auto it = spec.find("aggregates");
  if (it == spec.end() || !it->is_object() || it->empty())
    return Fail(where + ".aggregates", "required: an object of column name -> {\"fn\": ..., \"from\": ...}");
  for (auto a = it->begin(); a != it->end(); ++a) {
    std::string at = where + ".aggregates." + a.key();
    if (!IsValidIdentifier(a.key())) return Fail(at, "column name must be a lower-case identifier");
    if (!a->is_object()) return Fail(at, "expected {\"fn\": ..., \"from\": ...}");
    FRESHET_RETURN_IF_ERROR(CheckKeys(*a, at, {"fn", "from", "type"}));
    auto fn_field = StringField(*a, "fn", at, "");
    if (!fn_field.ok()) return fn_field.status();
    std::string fn = *fn_field;
    SpecColumn c;
    c.name = a.key();
    if (fn == "count")
      c.fn = AggregateFn::kCount, c.sql_type = "bigint";
    else if (fn == "sum")
      c.fn = AggregateFn::kSum, c.sql_type = "double precision";
    else if (fn == "min")
      c.fn = AggregateFn::kMin, c.sql_type = "double precision";
    else if (fn == "max")
      c.fn = AggregateFn::kMax, c.sql_type = "double precision";
    else if (fn == "avg")
      c.fn = AggregateFn::kAvg, c.sql_type = "double precision";
    else
      return Fail(at + ".fn", "expected count, sum, min, max or avg");
    if (a->contains("type")) {
      std::string type = (*a)["type"].is_string() ? (*a)["type"].get<std::string>() : "";
      if (c.fn == AggregateFn::kCount || c.fn == AggregateFn::kAvg || (type != "bigint" && type != "double"))
        return Fail(at + ".type", "only sum, min and max take a type: bigint or double");
      c.sql_type = kTypes.at(type);
    }
    if (c.fn != AggregateFn::kCount) {
      if (!a->contains("from") || !(*a)["from"].is_string()) return Fail(at + ".from", "required for " + fn);
      c.from = (*a)["from"].get<std::string>();
      FRESHET_RETURN_IF_ERROR(CheckSource(c.from, at + ".from"));
    }
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

Status ParseTypeList(const SpecJson& spec, const char* key, const std::string& where,
                     std::set<std::string, std::less<>>* out) {
  auto it = spec.find(key);
  if (it == spec.end()) return Status::Ok();
  if (!it->is_array()) return Fail(where + "." + key, "expected an array of event type names");
  for (const auto& t : *it) {
    if (!t.is_string() || t.get<std::string>().empty())
      return Fail(where + "." + key, "expected event type names");
    out->insert(t.get<std::string>());
  }
  return Status::Ok();
}

Status ParseInt(const SpecJson& object, const char* key, const std::string& where, int min, int max,
                int* out) {
  auto it = object.find(key);
  if (it == object.end()) return Status::Ok();
  if (!it->is_number_integer() || it->get<long>() < min || it->get<long>() > max)
    return Fail(where + "." + key,
                "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  *out = it->get<int>();
  return Status::Ok();
}

std::string Fnv1aHex(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 10);
}

Result<ViewSpec> ParseOne(const SpecJson& j, const std::string& where) {
  if (!j.is_object()) return Fail(where, "expected an object");
  ViewSpec v;
  v.definition = j;
  if (!j.contains("name") || !j["name"].is_string()) return Fail(where + ".name", "required string");
  v.name = j["name"].get<std::string>();
  std::string at = where + "(" + v.name + ")";
  if (!IsValidIdentifier(v.name))
    return Fail(at + ".name", "must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 48 characters)");
  auto kind_field = StringField(j, "kind", at, "");
  if (!kind_field.ok()) return kind_field.status();
  std::string kind = *kind_field;
  std::set<std::string> common = {"name",   "kind",     "source",   "event_types", "where",
                                  "stores", "delivery", "on_error", "freshness"};
  auto source = ParseSourceSpec(j.contains("source") ? &j["source"] : nullptr, at + ".source");
  if (!source.ok()) return source.status();
  v.source = std::move(source.value());
  if (kind == "latest") {
    v.kind = ViewKind::kLatest;
    common.insert({"key", "columns", "delete_on"});
    FRESHET_RETURN_IF_ERROR(CheckKeys(j, at, common));
    FRESHET_RETURN_IF_ERROR(ParseColumns(j, "key", at, false, &v.key_columns));
    FRESHET_RETURN_IF_ERROR(ParseColumns(j, "columns", at, false, &v.value_columns));
    FRESHET_RETURN_IF_ERROR(ParseTypeList(j, "delete_on", at, &v.delete_on));
  } else if (kind == "aggregate") {
    v.kind = ViewKind::kAggregate;
    common.insert({"group_by", "aggregates"});
    FRESHET_RETURN_IF_ERROR(CheckKeys(j, at, common));
    FRESHET_RETURN_IF_ERROR(ParseColumns(j, "group_by", at, true, &v.key_columns));
    FRESHET_RETURN_IF_ERROR(ParseAggregates(j, at, &v.value_columns));
  } else if (kind == "cpp") {
    // A C++ projection registered by the binary (views/projection_registry.h)
    // defines its own table; the definition only names it and sets how it runs.
    v.kind = ViewKind::kCpp;
    common.insert("projection");
    // The projection chooses its events itself.
    common.erase("event_types");
    common.erase("where");
    FRESHET_RETURN_IF_ERROR(CheckKeys(j, at, common));
    auto projection = StringField(j, "projection", at, "");
    if (!projection.ok()) return projection.status();
    if (projection->empty())
      return Fail(at + ".projection", "required: the name a C++ projection was registered with");
    v.projection = *projection;
    if (v.source.format != SourceFormat::kFreshet)
      return Fail(at + ".source.format",
                  "a C++ projection reads freshet events: leave format out or set \"freshet\"");
  } else {
    return Fail(at + ".kind", "expected \"latest\", \"aggregate\" or \"cpp\"");
  }
  if (v.source.envelope == SourceEnvelope::kUpsert && v.kind == ViewKind::kLatest) {
    // The Kafka key is the row's identity: a tombstone has nothing else.
    for (const auto& c : v.key_columns)
      if (c.from.rfind("$key", 0) != 0)
        return Fail(at + ".key." + c.name,
                    "an upsert source's rows are identified by the Kafka key: use $key or "
                    "$key/pointer, not " +
                        c.from);
  }
  std::set<std::string> names;
  for (const auto* list : {&v.key_columns, &v.value_columns})
    for (const auto& c : *list)
      if (!names.insert(c.name).second) return Fail(at, "column " + c.name + " is defined twice");
  FRESHET_RETURN_IF_ERROR(ParseTypeList(j, "event_types", at, &v.event_types));
  if (auto w = j.find("where"); w != j.end()) {
    if (!w->is_object()) return Fail(at + ".where", "expected {\"field\", \"op\", \"value\"}");
    FRESHET_RETURN_IF_ERROR(CheckKeys(*w, at + ".where", {"field", "op", "value"}));
    Predicate p;
    auto field = StringField(*w, "field", at + ".where", "");
    auto op = StringField(*w, "op", at + ".where", "");
    if (!field.ok()) return field.status();
    if (!op.ok()) return op.status();
    p.field = *field;
    p.op = *op;
    FRESHET_RETURN_IF_ERROR(CheckSource(p.field, at + ".where.field"));
    static const std::set<std::string> kOps = {"=", "!=", "<", "<=", ">", ">="};
    if (!kOps.count(p.op)) return Fail(at + ".where.op", "expected one of = != < <= > >=");
    if (!w->contains("value")) return Fail(at + ".where.value", "required");
    p.value = nlohmann::json::parse((*w)["value"].dump());
    v.where = p;
  }
  if (auto s = j.find("stores"); s != j.end()) {
    v.stores.clear();
    if (!s->is_array() || s->empty())
      return Fail(at + ".stores", "expected an array with \"postgres\" and/or \"rocksdb\"");
    for (const auto& store : *s) {
      if (!store.is_string() || (store != "postgres" && store != "rocksdb"))
        return Fail(at + ".stores", "expected \"postgres\" and/or \"rocksdb\"");
      v.stores.push_back(store.get<std::string>());
    }
  }
  if (v.source.changelog() && v.kind == ViewKind::kAggregate) {
    // Kept as one row per source row and aggregated by the SQL view (see
    // DeclarativeProjection): only Postgres can do that.
    for (const auto& store : v.stores)
      if (store != "postgres")
        return Fail(at + ".stores", std::string("an aggregate over a changelog (envelope ") +
                                        EnvelopeName(v.source.envelope) +
                                        ") is computed by Postgres when it is read; it has no RocksDB copy");
  }
  auto delivery_field = StringField(j, "delivery", at, "exactly_once");
  if (!delivery_field.ok()) return delivery_field.status();
  std::string delivery = *delivery_field;
  if (delivery != "exactly_once" && delivery != "at_least_once")
    return Fail(at + ".delivery", "expected exactly_once or at_least_once");
  v.exactly_once = delivery == "exactly_once";
  auto on_error_field = StringField(j, "on_error", at, "dead_letter");
  if (!on_error_field.ok()) return on_error_field.status();
  std::string on_error = *on_error_field;
  if (on_error != "dead_letter" && on_error != "stop")
    return Fail(at + ".on_error", "expected dead_letter or stop");
  v.stop_on_error = on_error == "stop";
  if (auto f = j.find("freshness"); f != j.end()) {
    if (!f->is_object()) return Fail(at + ".freshness", "expected an object");
    FRESHET_RETURN_IF_ERROR(
        CheckKeys(*f, at + ".freshness", {"flush_interval_ms", "max_batch_rows", "max_lag_ms", "priority"}));
    FRESHET_RETURN_IF_ERROR(
        ParseInt(*f, "flush_interval_ms", at + ".freshness", 1, 3600000, &v.flush_interval_ms));
    FRESHET_RETURN_IF_ERROR(
        ParseInt(*f, "max_batch_rows", at + ".freshness", 1, 10000000, &v.max_batch_rows));
    FRESHET_RETURN_IF_ERROR(ParseInt(*f, "max_lag_ms", at + ".freshness", 1, 86400000, &v.max_lag_ms));
    auto priority_field = StringField(*f, "priority", at + ".freshness", "realtime");
    if (!priority_field.ok()) return priority_field.status();
    std::string priority = *priority_field;
    if (priority != "realtime" && priority != "batch")
      return Fail(at + ".freshness.priority", "expected realtime or batch");
    v.realtime = priority == "realtime";
  }
  // What decides the rows' contents; freshness and delivery do not.
  SpecJson identity = j;
  for (const char* k : {"freshness", "delivery", "on_error", "stores"}) identity.erase(k);
  // Where a view may start does not change what its rows are made of.
  // Nor where its schemas are fetched from (a registry's address or
  // credentials): a schema id names the same schema in any of them.
  if (identity.contains("source") && identity["source"].is_object()) {
    identity["source"].erase("allow_incomplete_log");
    identity["source"].erase("schema_registry");
  }
  v.version = Fnv1aHex(identity.dump());
  return v;
}

}  // namespace

bool ReadsKeyJson(const ViewSpec& spec) {
  auto key_pointer = [](const std::string& from) { return from.rfind("$key/", 0) == 0; };
  for (const auto* list : {&spec.key_columns, &spec.value_columns})
    for (const auto& c : *list)
      if (key_pointer(c.from)) return true;
  if (spec.where && key_pointer(spec.where->field)) return true;
  return spec.source.type.kind == FieldRef::kKeyPointer;
}

bool IsValidIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 48) return false;
  if (!(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_'))
      return false;
  return true;
}

Result<std::vector<ViewSpec>> ParseViewSpecs(const SpecJson& definitions, const std::string& path) {
  if (!definitions.is_array()) return Fail(path, "expected an array of view definitions");
  std::vector<ViewSpec> out;
  std::set<std::string> names;
  for (size_t i = 0; i < definitions.size(); ++i) {
    auto spec = ParseOne(definitions[i], path + "[" + std::to_string(i) + "]");
    if (!spec.ok()) return spec.status();
    if (!names.insert(spec->name).second)
      return Fail(path + "[" + std::to_string(i) + "].name", "view " + spec->name + " is defined twice");
    out.push_back(std::move(spec.value()));
  }
  return out;
}

}  // namespace freshet
