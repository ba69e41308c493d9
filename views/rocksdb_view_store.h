// RocksDbViewStore: one view's rows in the view process's RocksDB database,
// for point and prefix queries over HTTP.
//
// Row key: the key columns' text joined by '\x1f' (so "?prefix=store-01/"
// selects every row of store-01). Row value: a JSON object of the value
// columns, numbers as numbers. Columns that merge (sums, counts, min, max)
// are combined with the stored row here, in the one thread that writes the
// table, before the batch commits with the offsets.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sinks/rocksdb_store.h"
#include "views/view_store.h"

namespace freshet {

class RocksDbViewStore final : public ViewStore {
 public:
  // Creates the table (view_name__v<version>) and points the view's alias
  // at it. `store` is shared by every view of the process.
  static Result<std::unique_ptr<RocksDbViewStore>> Open(RocksDbStore& store, const std::string& topic,
                                                        const TableSpec& table);
  const char* kind() const override { return "rocksdb"; }
  Result<std::map<int32_t, int64_t>> LoadOffsets() override;
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
               std::vector<RowChange>* changes = nullptr) override;
  Result<std::vector<RowChange>> ReadRows(const std::string& encoded_prefix, size_t limit) override;

  // The encoded key (see EncodeKey) of `/`-separated text from a URL.
  static std::string KeyFromUrl(const std::string& slash_separated);
  // {"key": [...], "value": {...}} for one stored row.
  static nlohmann::json RowJson(const std::string& key, const std::string& value);

 private:
  // The change of a stored row: key columns plus the stored value object.
  RowChange FullRow(const RowWrite& row, nlohmann::json value) const;
  RocksDbViewStore(RocksDbStore& store, std::string topic, TableSpec table)
      : store_(store), topic_(std::move(topic)), table_(std::move(table)) {}
  RocksDbStore& store_;
  std::string topic_;
  TableSpec table_;
};

}  // namespace freshet
