// Declarative views: what users write most, in the config file under
// "views": {"definitions": [...]}.
//
//  latest-row view: one row per key, upserted from each matching event,
//  deleted on `delete_on` types or when the row stops matching `where`:
//    {"name": "low_stock", "kind": "latest",
//     "key": {"store": "/store", "sku": "/sku"},
//     "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}},
//     "where": {"field": "/on_hand", "op": "<", "value": 5}}
//
//  grouped aggregate: count, sum, min, max, avg per group, grouped by
//  fields and/or a time bucket (minute, hour, day) of the event time:
//    {"name": "sales_per_store_hour", "kind": "aggregate",
//     "event_types": ["StockSold"],
//     "group_by": {"store": "/store", "hour": {"from": "$ts", "bucket": "hour"}},
//     "aggregates": {"units": {"fn": "sum", "from": "/qty", "type": "bigint"}, "sales": {"fn": "count"}}}
//  (sum, min and max are double precision unless given "type": "bigint")
//
// `from` is a JSON pointer into the event's data, or $ts / $type / $id, and
// for other topics (a view's "source", sources/source_spec.h) also $key,
// $key/ptr, $topic, $partition, $offset, $header.NAME.
// Columns keep the order they are written in. Names are
// validated as SQL identifiers; every error names the view and the field.
// A spec's version is a hash of its canonical JSON: a changed definition
// gets a new table and is rebuilt, never mixed with old rows.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "sources/source_spec.h"

namespace freshet {

enum class ViewKind { kLatest, kAggregate, kCpp };
enum class AggregateFn { kNone, kCount, kSum, kMin, kMax, kAvg };
enum class TimeBucket { kNone, kMinute, kHour, kDay };

struct SpecColumn {
  std::string name;
  // text, bigint, double precision, boolean, timestamptz, jsonb, numeric, date, uuid
  std::string sql_type = "text";
  std::string from;  // a field reference (FieldRef); empty for count
  AggregateFn fn = AggregateFn::kNone;
  TimeBucket bucket = TimeBucket::kNone;
};

struct Predicate {
  std::string field;  // JSON pointer or $type
  std::string op;     // = != < <= > >=
  nlohmann::json value;
};

struct ViewSpec {
  std::string name;
  ViewKind kind = ViewKind::kLatest;
  std::string projection;                 // kCpp: the registered C++ projection's name
  std::vector<SpecColumn> key_columns;    // latest: key; aggregate: group_by
  std::vector<SpecColumn> value_columns;  // latest: columns; aggregate: aggregates
  // std::less<>: looked up by the string_view of each event's type.
  std::set<std::string, std::less<>> event_types;  // empty: every type
  std::set<std::string, std::less<>> delete_on;    // latest only
  std::optional<Predicate> where;
  std::vector<std::string> stores = {"postgres"};  // postgres and/or rocksdb
  bool exactly_once = true;                        // delivery: exactly_once | at_least_once
  bool stop_on_error = false;                      // on_error: dead_letter (default) | stop
  int flush_interval_ms = 100;
  int max_batch_rows = 50000;
  int max_lag_ms = 5000;              // above this the view reports itself stale
  bool realtime = true;               // priority: realtime | batch
  SourceSpec source;                  // where the records come from and their layout
  std::string version;                // hash of the canonical spec
  nlohmann::ordered_json definition;  // the spec as written
};

// Parses and validates `definitions` (a JSON array); `path` prefixes error
// messages, e.g. "views.definitions".
Result<std::vector<ViewSpec>> ParseViewSpecs(const nlohmann::ordered_json& definitions,
                                             const std::string& path);

// The topic a view reads: its source's, or the writer's (`writer_topic`).
inline const std::string& SourceTopic(const ViewSpec& spec, const std::string& writer_topic) {
  return spec.source.topic.empty() ? writer_topic : spec.source.topic;
}
// True when a definition reads into the Kafka key ($key/ptr): keys are then
// parsed as JSON.
bool ReadsKeyJson(const ViewSpec& spec);

// Lower-case SQL identifier, 1-48 characters: [a-z_][a-z0-9_]*.
bool IsValidIdentifier(const std::string& name);

}  // namespace freshet
