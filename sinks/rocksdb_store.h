// RocksDbStore: the projection store of a view process. A view's rows and the
// next Kafka offset of each partition it consumed commit in ONE RocksDB
// WriteBatch, so a crash leaves either both or neither and a restarted view
// resumes exactly where its rows end (exactly-once effect).
//
// Layout, one RocksDB database per view process:
//   - one column family per *table*, named by the caller ("stock_levels__v1");
//   - "freshet.offsets": key table '\0' topic '\0' partition (4 bytes, big
//     endian), value the next offset (8 bytes, big endian);
//   - "freshet.meta": the alias of each view, the table readers should use.
// A view is rebuilt into a new table beside the live one and swapped in with
// SetAlias: one Put, so readers resolve either the old or the new table,
// never a half-built one. Names starting with "freshet." and "default" are
// reserved for the store.
//
// Durability: with Options::sync = false a write survives a crash of the
// process (it is in the WAL, in the page cache) but not of the machine; with
// sync = true every Write fdatasyncs the WAL, so batch rows per Write.
//
// Threading: one writer thread (Write, EnsureTable, DropTable, SetAlias,
// RemoveAlias; these are serialized by the store anyway) plus any number of
// concurrent readers (Get, Scan, ResolveAlias, LoadOffsets, Tables,
// Checkpoint). RocksDB allows one process to open a database: a second Open
// of the same path, from this process or another, fails with kUnavailable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "sinks/table.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class TableFactory;
}  // namespace rocksdb

namespace freshet {

// One row change; std::nullopt deletes the key.
struct KvWrite {
  std::string key;
  std::optional<std::string> value;
};

class RocksDbStore {
 public:
  struct Options {
    bool sync = false;           // fdatasync the WAL on every write
    size_t block_cache_mb = 64;  // one LRU block cache shared by all tables
  };

  // Opens the database at `path`, creating it if missing. Every column family
  // already in the database is opened (RocksDB refuses an open that omits one).
  static Result<std::unique_ptr<RocksDbStore>> Open(const std::string& path, const Options& options);
  ~RocksDbStore();
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  // Creates the table if missing; OK if it exists. A newly created table
  // starts with no offsets: any recorded under its name are removed first.
  Status EnsureTable(const std::string& table);
  // Drops the table's rows and its offsets; OK if there is no such table.
  // kConflict while a view's alias points to the table: swap the alias (or
  // RemoveAlias) first, so readers never resolve to a dropped table. A reader
  // that resolved the old table just before the swap may still get kNotFound
  // from Get/Scan once it is dropped: resolve again.
  Status DropTable(const std::string& table);

  // Points `view` at `table` (which must exist) in one write: a concurrent
  // ResolveAlias returns the old table or the new one.
  Status SetAlias(const std::string& view, const std::string& table);
  Status RemoveAlias(const std::string& view);
  // kNotFound if the view has no alias.
  Result<std::string> ResolveAlias(const std::string& view) const;

  // next_offset per partition of (table, topic) as committed with the rows;
  // a partition never written is absent. kNotFound if there is no such table.
  Result<std::map<int32_t, int64_t>> LoadOffsets(const std::string& table, const std::string& topic) const;

  // Rows (applied in order) and offsets in one WriteBatch. Each offset's
  // expected_next must equal the stored next offset (-1: nothing stored),
  // else kConflict and nothing is written.
  Status Write(const std::string& table, const std::string& topic, const std::vector<KvWrite>& rows,
               const std::vector<OffsetAdvance>& offsets);

  // std::nullopt if the key is absent; kNotFound if the table is.
  Result<std::optional<std::string>> Get(const std::string& table, const std::string& key) const;
  // Up to `limit` rows whose key starts with `prefix`, in key (bytewise)
  // order, read from one consistent snapshot.
  Result<std::vector<std::pair<std::string, std::string>>> Scan(const std::string& table,
                                                                const std::string& prefix,
                                                                size_t limit) const;
  // Calls `visit(key, value)` for every row whose key starts with `prefix`,
  // in key order, from one consistent snapshot, until `visit` returns false.
  Status ScanEach(const std::string& table, const std::string& prefix,
                  const std::function<bool(std::string_view key, std::string_view value)>& visit) const;

  // Writes a self-consistent copy of the database (rows, offsets and aliases
  // as of one instant) to `dir`, which must not exist yet. The copy opens
  // with rocksdb::DB::OpenForReadOnly, or with Open as a new store. SST files
  // are hard-linked when `dir` is on the same filesystem.
  Status Checkpoint(const std::string& dir) const;

  // The tables, sorted by name (the store's own column families excluded).
  std::vector<std::string> Tables() const;

  const std::string& path() const { return path_; }

  // Destroys a column family handle through its DB, as RocksDB requires
  // before the DB closes.
  struct ColumnFamilyCloser {
    rocksdb::DB* db;
    void operator()(rocksdb::ColumnFamilyHandle* handle) const;
  };
  using ColumnFamily = std::unique_ptr<rocksdb::ColumnFamilyHandle, ColumnFamilyCloser>;

 private:
  RocksDbStore(std::string path, const Options& options);
  // The table's handle, or kNotFound naming it. Caller holds tables_mu_ (any
  // mode) or write_mu_.
  Result<rocksdb::ColumnFamilyHandle*> FindTable(const std::string& table) const;
  Status DeleteOffsetsOf(const std::string& table);
  std::string Context(const std::string& table) const;

  std::string path_;
  Options options_;
  // Declared before the handles: members are destroyed in reverse order, and
  // every handle must be destroyed before the DB.
  std::unique_ptr<rocksdb::DB> db_;
  std::shared_ptr<rocksdb::TableFactory> table_factory_;  // shared by every family: one block cache
  ColumnFamily default_cf_;
  ColumnFamily meta_cf_;
  ColumnFamily offsets_cf_;

  // Serializes the writer-side calls, so an offset check and the write that
  // depends on it cannot interleave with another write.
  std::mutex write_mu_;
  // Guards tables_: changed only with write_mu_ held and this one exclusive;
  // readers hold it shared for the whole read, so DropTable waits for them.
  mutable std::shared_mutex tables_mu_;
  std::map<std::string, ColumnFamily> tables_;
};

}  // namespace freshet
