// Partition shares: how a RocksDB view keeps the rows of each source
// partition apart, and how shares become whole rows again when read.
//
// Several view processes share a view's partitions through the consumer
// group, each with its own RocksDB copy of the partitions it owns. A row's
// key need not be the topic's partition key (sales per hour, over a topic
// keyed by order), so one row can have a share in every partition: a partial
// sum, count, min or max. Each share is stored under its own key,
//   EncodeKey(key columns) '\0' partition (4 bytes, big endian),
// so that all shares of a row sort next to each other, before any longer
// key, and a read merges them in one ordered pass: merging columns
// (Merge::kAdd, kMin, kMax) combine, replaced columns come from the share of
// the highest partition (partitions have no order between them; this keeps
// the answer the same on every process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "sinks/table.h"

namespace freshet {

// The stored key of `partition`'s share of the row `encoded_key`.
std::string ShareKey(std::string_view encoded_key, int32_t partition);
// Splits a stored key; false if it is not a share key.
bool SplitShareKey(std::string_view stored, std::string_view* encoded_key, int32_t* partition);
// The prefix every share of the row `encoded_key` starts with.
std::string SharesOf(std::string_view encoded_key);

// One partition's share of a row: its value columns as stored.
struct RowShare {
  std::string key;  // EncodeKey form
  int32_t partition = -1;
  nlohmann::json value;  // {column: value}
};

// Folds `share` into `whole` (both {column: value} objects) by the table's
// merge rules; `share` is of a higher partition than what `whole` holds.
void AddShare(const TableSpec& table, const nlohmann::json& share, nlohmann::json* whole);
// One column: `stored` combined with `written` by `column.merge` (a null is
// absent; kReplace takes `written`).
nlohmann::json CombineColumn(const ColumnSpec& column, const nlohmann::json& stored,
                             const nlohmann::json& written);

// Whole rows from shares, in key order, at most `limit` keys. `shares` may
// come from several processes in any order.
std::vector<std::pair<std::string, nlohmann::json>> MergeShares(const TableSpec& table,
                                                                std::vector<RowShare> shares, size_t limit);

}  // namespace freshet
