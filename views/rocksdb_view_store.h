// RocksDbViewStore: one view's rows in the view process's RocksDB database,
// for point and prefix queries over HTTP.
//
// Row key: the key columns' text joined by '\x1f' (so "?prefix=store-01/"
// selects every row of store-01), stored once per source partition that has
// a share in the row (views/partition_rows.h), so that several processes can
// each hold the partitions they own. Row value: a JSON object of the value
// columns, numbers as numbers. Columns that merge (sums, counts, min, max)
// are combined with the stored row here, in the one thread that writes the
// table, before the batch commits with the offsets.
//
// Versions, as in Postgres: readers resolve the view's alias. A changed
// definition, or a rebuild (`freshet rebuild VIEW --store rocksdb`, version
// "<hash>r<unix seconds>"), is built into a new table beside the live one
// (building() is true; the alias "<view>.building" names it, so a restarted
// process resumes it) and swapped in with one alias write once the engine
// has caught up (SwapIn); the old table is dropped then. Meanwhile readers,
// and feed snapshots, get the old rows.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "sinks/rocksdb_store.h"
#include "views/partition_rows.h"
#include "views/view_store.h"

namespace freshet {

class RocksDbViewStore final : public ViewStore {
 public:
  // Opens the view's table for `table`'s definition: the live one if it has
  // this definition (a rebuilt "<hash>r<n>" one included), an unfinished
  // build of it, or a new one (built beside a live table of another
  // definition). With `rebuild`, a new "<hash>r<unix seconds>" version is
  // built beside the live one (or the unfinished rebuild resumed). `store`
  // is shared by every view of the process.
  static Result<std::unique_ptr<RocksDbViewStore>> Open(RocksDbStore& store, const std::string& topic,
                                                        const TableSpec& definition, bool rebuild = false);
  const char* kind() const override { return "rocksdb"; }
  bool keeps_partition_shares() const override { return true; }
  Result<std::map<int32_t, int64_t>> LoadOffsets() override;
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
               std::vector<RowChange>* changes = nullptr) override;
  Result<std::vector<RowShare>> ReadPartitionShares(const std::string& encoded_prefix,
                                                    const std::set<int32_t>& partitions,
                                                    size_t limit) override;
  Result<std::vector<RowChange>> ReadRows(const std::string& encoded_prefix, size_t limit) override;
  Result<std::map<int32_t, int64_t>> LiveOffsets() override;
  bool building() const override { return !live_table_.empty(); }
  Status SwapIn() override;
  // The table this store writes.
  std::string table_name() const override { return table_name_; }
  // The alias under which an unfinished build of `view` is recorded.
  static std::string BuildingAlias(const std::string& view) { return view + ".building"; }

  // The shares (views/partition_rows.h) of the rows of `table` whose
  // encoded key starts with `encoded_prefix`, from `partitions` (every one
  // when empty), for at most `limit` keys, in key order.
  static Result<std::vector<RowShare>> ReadShares(const RocksDbStore& store, const std::string& table,
                                                  const std::string& encoded_prefix,
                                                  const std::set<int32_t>& partitions, size_t limit);
  // The encoded key (see EncodeKey) of `/`-separated text from a URL.
  static std::string KeyFromUrl(const std::string& slash_separated);
  // {"key": [...], "value": {...}} for one stored row.
  static nlohmann::json RowJson(const std::string& key, const std::string& value);

 private:
  // The change of a stored row: key columns plus the stored value object.
  RowChange FullRow(const RowWrite& row, nlohmann::json value) const;
  RocksDbViewStore(RocksDbStore& store, std::string topic, TableSpec table)
      : store_(store), topic_(std::move(topic)), table_(std::move(table)), table_name_(table_.table_name()) {}
  // Drops the view's tables other than `keep` (leftovers of earlier
  // versions and abandoned builds).
  Status DropOtherVersions(const std::string& keep);
  RocksDbStore& store_;
  std::string topic_;
  TableSpec table_;
  std::string table_name_;
  std::string live_table_;  // while building: the table readers use
};

}  // namespace freshet
