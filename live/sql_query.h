// The pure parts of live SQL queries (live/sql_feed.h is the I/O): what a
// client may send, which views a query reads, and the diff between two
// results. No I/O here, so each is unit-tested on its own.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace freshet {

struct LiveQueryRequest {
  std::string sql;               // one SELECT, without a trailing ';'
  std::vector<std::string> key;  // result columns that identify a row
  int min_interval_ms = 250;
};

// Parses a client's {"sql", "key", "min_interval_ms"} message. Refuses
// anything but a single SELECT (or WITH ... SELECT) with a reason that says
// what was wrong. The statement still runs read-only as a reader role: this
// check gives clear errors, the database gives the guarantee.
Result<LiveQueryRequest> ParseLiveQueryRequest(const std::string& message);

// The names among `known_views` that `sql` mentions as identifiers (outside
// string literals and comments), lower case.
std::set<std::string> ReferencedViews(const std::string& sql, const std::set<std::string>& known_views);

// Rows keyed by the JSON text of their key columns' values.
using KeyedRows = std::map<std::string, nlohmann::json>;

struct ResultDiff {
  nlohmann::json added = nlohmann::json::array();
  nlohmann::json changed = nlohmann::json::array();
  nlohmann::json removed = nlohmann::json::array();  // key columns only
  bool empty() const { return added.empty() && changed.empty() && removed.empty(); }
};

ResultDiff DiffResults(const KeyedRows& before, const KeyedRows& after, const std::vector<std::string>& key);

}  // namespace freshet
