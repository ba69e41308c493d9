// ViewStore: where one view's rows and offsets go, as the engine sees it.
// Both stores commit rows and the next offsets of the partitions they cover
// atomically, with the expected-offset check that keeps a second writer
// from doubling rows.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "sinks/table.h"
#include "views/partition_rows.h"

namespace freshet {

class PostgresSink;  // sinks/postgres_sink.h

// A committed row as change feeds send it: the whole row after the change.
struct RowChange {
  std::vector<std::string> key;
  nlohmann::json row;  // {column: value} of every column; null when deleted
  int32_t partition = -1;
  int64_t offset = -1;
  // A store that keeps partition shares also gives this partition's share
  // of the row (its value columns; null once deleted): feeds forwarded to
  // another process merge shares themselves (live/feed_relay.h).
  bool has_share = false;
  nlohmann::json share;
};

// A whole row as feeds send it: the key columns (typed) and `values`.
nlohmann::json RowWithKey(const TableSpec& table, const std::vector<std::string>& key, nlohmann::json values);

// A column's text as a JSON value of the column's SQL type: a number for
// bigint and double precision when the text is one (else the text), true or
// false for boolean, the parsed value for jsonb, a string otherwise.
nlohmann::json TypedColumn(const std::optional<std::string>& text, const std::string& sql_type);
// The same value appended as JSON text, without building a json value:
// RocksDB stores a row per write, and nlohmann's object cost showed there.
void AppendTypedColumn(std::string* out, const std::optional<std::string>& text, const std::string& sql_type);
// A full-row write (values as stored, not deltas) as a RowChange.
RowChange ToRowChange(const TableSpec& table, const RowWrite& full_row);
// Key columns joined by '\x1f': how RocksDB stores keys and feeds filter them.
std::string EncodeKey(const std::vector<std::string>& parts);
// The key columns again.
std::vector<std::string> DecodeKey(std::string_view encoded);

class ViewStore {
 public:
  virtual ~ViewStore() = default;
  virtual const char* kind() const = 0;        // "postgres", "rocksdb"
  virtual std::string table_name() const = 0;  // the table this store writes
  // True when rows are stored per source partition (RowWrite::partition
  // names the share, views/partition_rows.h): the engine then hands over
  // the rows of one partition at a time.
  virtual bool keeps_partition_shares() const { return false; }
  virtual Result<std::map<int32_t, int64_t>> LoadOffsets() = 0;
  // With `changes`, also returns the committed rows as they are stored
  // after the write, for change feeds (costs a little: off unless asked).
  virtual Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
                       std::vector<RowChange>* changes = nullptr) = 0;
  // Up to `limit` rows whose encoded key starts with `encoded_prefix`, in
  // key order: feed snapshots.
  virtual Result<std::vector<RowChange>> ReadRows(const std::string& encoded_prefix, size_t limit) = 0;
  // The shares of `partitions` of up to `limit` rows under `encoded_prefix`
  // (only stores that keep partition shares): forwarded feeds' snapshots.
  virtual Result<std::vector<RowShare>> ReadPartitionShares(const std::string& /*encoded_prefix*/,
                                                            const std::set<int32_t>& /*partitions*/,
                                                            size_t /*limit*/) {
    return Status::InvalidArgument(std::string(kind()) + " stores keep no partition shares");
  }
  // A new version being built beside the live one (see PostgresSink).
  virtual bool building() const { return false; }
  // The offsets of the version readers see (the live one while building).
  virtual Result<std::map<int32_t, int64_t>> LiveOffsets() { return LoadOffsets(); }
  virtual Status SwapIn() { return Status::Ok(); }
  // kConflict once another process swapped a rebuilt table in.
  virtual Status StillCurrent() { return Status::Ok(); }
  // A rebuild's progress as JSON text ("" when none runs).
  virtual Result<std::string> RebuildProgress() { return std::string(); }
};

// Adapts a PostgresSink. Out of line, so that the engine and the feeds do
// not include libpqxx through this header.
class PostgresViewStore final : public ViewStore {
 public:
  PostgresViewStore(std::unique_ptr<PostgresSink> sink, TableSpec table);
  ~PostgresViewStore() override;
  const char* kind() const override { return "postgres"; }
  std::string table_name() const override;
  Result<std::map<int32_t, int64_t>> LoadOffsets() override;
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
               std::vector<RowChange>* changes = nullptr) override;
  // While a new version builds: the live version's rows and offsets.
  Result<std::vector<RowChange>> ReadRows(const std::string& encoded_prefix, size_t limit) override;
  Result<std::map<int32_t, int64_t>> LiveOffsets() override;
  bool building() const override;
  Status SwapIn() override;
  Status StillCurrent() override;
  Result<std::string> RebuildProgress() override;

 private:
  std::unique_ptr<PostgresSink> sink_;
  TableSpec table_;
};

}  // namespace freshet
