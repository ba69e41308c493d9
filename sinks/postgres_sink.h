// PostgresSink: writes a view's rows and its Kafka offsets in ONE Postgres
// transaction, so the view's effect is exactly-once across crashes.
//
// Rows go through COPY into a temporary staging table and one
// INSERT ... ON CONFLICT; a column may add to the stored value instead of
// replacing it (counters and sums). The offsets row of each partition is
// advanced only if it still holds the offset this sink last saw: a second
// process that took the partition over makes our write fail with kConflict
// instead of doubling rows.
//
// Threading: one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

#include "core/status.h"
#include "sinks/table.h"

namespace freshet {

class PostgresSink {
 public:
  // Connects, applies freshet's migrations and creates the view's table.
  // If the stable SQL view already serves another version's table (the
  // definition changed), the new table is built beside it (building() is
  // true) and readers keep the old rows until SwapIn().
  //
  // Rebuilds: `freshet rebuild` builds version "<hash>r<stamp>" of the same
  // definition. A sink opened with the plain "<hash>" follows the rebuilt
  // table once it is live instead of building its own again.
  static Result<std::unique_ptr<PostgresSink>> Open(const std::string& url, const std::string& topic,
                                                    const TableSpec& table);
  ~PostgresSink();

  // next_offset per partition, as stored with the rows (of this version's table).
  Result<std::map<int32_t, int64_t>> LoadOffsets();
  bool building() const { return building_; }
  // The table this sink writes (after following a rebuild, see Open).
  const TableSpec& table() const { return table_; }
  // Ok while this sink's table is the live one (or the one being built);
  // kConflict once a rebuild swapped another table in: reopen to follow it.
  Status StillCurrent();
  // What `freshet rebuild` last reported for this view (JSON text), or "".
  Result<std::string> RebuildProgress();
  // Makes this version the live one in one transaction: the SQL view now
  // selects from its table, the registry names it, and the previous
  // version's table and offsets are dropped. Readers see old or new rows.
  Status SwapIn();
  // Rows and offsets in one transaction; kConflict if an offset moved under us.
  // With `full_rows`, also returns every written row as it is stored after
  // the write (merged columns combined), for change feeds.
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
               std::vector<RowWrite>* full_rows = nullptr);
  // Up to `limit` rows of this version's table in key order, values as text.
  Result<std::vector<RowWrite>> ReadRows(size_t limit);
  // While building: up to `limit` rows of the live version, through the
  // stable SQL view, as JSON objects (its columns may differ from ours),
  // and the live version's offsets. Not building: LoadOffsets.
  Result<std::vector<nlohmann::json>> ReadLiveRows(size_t limit);
  Result<std::map<int32_t, int64_t>> LoadLiveOffsets();

 private:
  PostgresSink() = default;
  // The SQL statements for this table, then the table itself.
  Status Prepare();
  void BuildStatements();
  // Creates the table and publishes it as the view, or, when another
  // version of the view is live, registers this one as building beside it.
  Status CreateTable();
  Status FollowRebuild();
  // The database's now() at this process's first Open (see Open).
  std::string ProcessStartedAt();
  static bool IsRebuildOf(const std::string& table, const TableSpec& t);

  std::string url_;
  std::string topic_;
  TableSpec table_;
  std::unique_ptr<pqxx::connection> conn_;
  std::string upsert_sql_;
  std::string returning_sql_;  // " RETURNING <every column as text>"
  bool merges_ = false;        // some column combines with the stored value
  std::string delete_sql_;
  int staging_backend_pid_ = -1;  // the session whose temp staging table exists
  bool building_ = false;
  std::string live_table_;  // while building: the table readers see
  Status PublishView(pqxx::dbtransaction& tx);
  // The stored offsets of one version's table (offsets rows are keyed by it).
  Result<std::map<int32_t, int64_t>> LoadOffsetsOf(const std::string& table_name);
  // libpqxx 6.4 does not reconnect a broken connection: open a new one.
  Status EnsureConnected();
};

// Applies sql/migrations in order, once each, under an advisory lock.
Status ApplyMigrations(pqxx::connection& conn);

}  // namespace freshet
