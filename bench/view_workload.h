// The views benchmarks' workload, shared by views_bench (through Kafka and
// the stores) and projection_bench (the same work without them): two view
// definitions and the ~150-byte events they read.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "core/envelope.h"
#include "views/view_spec.h"

namespace freshet::bench {

// Sum and count per (store, sku): `keys` groups.
inline const char* kAggregateView = R"({"name": "bench_stock", "kind": "aggregate",
  "group_by": {"store": "/store", "sku": "/sku"},
  "aggregates": {"units": {"fn": "sum", "from": "/qty", "type": "bigint"}, "events": {"fn": "count"}}})";
// One row per event (unique keys).
inline const char* kLatestView = R"({"name": "bench_latest", "kind": "latest", "key": {"eid": "/eid"},
  "columns": {"store": {"from": "/store"}, "sku": {"from": "/sku"}, "qty": {"from": "/qty", "type": "bigint"}}})";

inline ViewSpec ParseBenchView(const char* definition) {
  return ParseViewSpecs(nlohmann::ordered_json::parse(std::string("[") + definition + "]"), "bench")->front();
}

// The n-th event: a sale in one of `keys` (store, sku) groups.
inline Event BenchEvent(std::mt19937& rng, int keys, int64_t n) {
  int key = static_cast<int>(rng() % static_cast<uint32_t>(keys));
  std::string store = "store-" + std::to_string(key % 100);
  return Event{"StockSold",
               "",
               NowMillis(),
               {{"store", store},
                {"sku", "sku-" + std::to_string(key / 100)},
                {"qty", 1 + rng() % 5},
                {"eid", "e" + std::to_string(n)},
                {"note", "bench"}}};
}

}  // namespace freshet::bench
