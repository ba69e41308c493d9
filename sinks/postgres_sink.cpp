#include "sinks/postgres_sink.h"

#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include "core/postgres.h"
#include "sql/migrations.h"

namespace freshet {
namespace {

// Any 64-bit number; it only has to be the same in every freshet process.
constexpr int64_t kMigrationLockId = 0x66726573686574;  // "freshet"

std::string QualifiedTable(const TableSpec& t) {
  return QuoteIdent(t.schema) + "." + QuoteIdent(t.table_name());
}
std::string QualifiedView(const TableSpec& t) { return QuoteIdent(t.schema) + "." + QuoteIdent(t.view_name); }

std::string StagingName(const TableSpec& t) { return "freshet_staging_" + t.table_name(); }
std::string DeletesName(const TableSpec& t) { return "freshet_deletes_" + t.table_name(); }

std::string MergeExpression(const ColumnSpec& c) {
  std::string col = QuoteIdent(c.name);
  switch (c.merge) {
    case Merge::kReplace:
      return "EXCLUDED." + col;
    case Merge::kAdd:
      return "COALESCE(target." + col + ", 0) + COALESCE(EXCLUDED." + col + ", 0)";
    case Merge::kMin:
      return "LEAST(target." + col + ", EXCLUDED." + col + ")";  // LEAST ignores NULLs
    case Merge::kMax:
      return "GREATEST(target." + col + ", EXCLUDED." + col + ")";
  }
  return "EXCLUDED." + col;
}

std::string KeyColumnList(const TableSpec& t) {
  std::string out;
  for (const auto& c : t.key_columns) out += (out.empty() ? "" : ", ") + QuoteIdent(c.name);
  return out;
}

std::string ColumnList(const TableSpec& t) {
  std::string out = KeyColumnList(t);
  for (const auto& c : t.value_columns) out += ", " + QuoteIdent(c.name);
  return out;
}

// Appends `value` escaped for COPY's text format.
void AppendCopyField(const std::string& value, std::string* line) {
  for (char c : value) {
    switch (c) {
      case '\\':
        *line += "\\\\";
        break;
      case '\t':
        *line += "\\t";
        break;
      case '\n':
        *line += "\\n";
        break;
      case '\r':
        *line += "\\r";
        break;
      default:
        *line += c;
    }
  }
}

class OffsetMoved : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A RowWrite from a row of text columns: the key columns, then the values.
RowWrite RowFromText(const pqxx::row& r, size_t key_count) {
  RowWrite row;
  for (size_t i = 0; i < r.size(); ++i) {
    const auto& field = r[static_cast<int>(i)];
    if (i < key_count)
      row.key.push_back(field.c_str());
    else
      row.values.push_back(field.is_null() ? std::nullopt : std::optional<std::string>(field.c_str()));
  }
  return row;
}

// This session's temporary tables that Write copies into before one
// statement applies them: the rows to upsert and the keys to delete.
void CreateStagingTables(pqxx::work& tx, const TableSpec& table) {
  tx.exec("CREATE TEMP TABLE IF NOT EXISTS " + QuoteIdent(StagingName(table)) + " (LIKE " +
          QualifiedTable(table) + " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
  std::string key_defs;
  for (const auto& k : table.key_columns)
    key_defs += (key_defs.empty() ? "" : ", ") + QuoteIdent(k.name) + " " + k.sql_type;
  tx.exec("CREATE TEMP TABLE IF NOT EXISTS " + QuoteIdent(DeletesName(table)) + " (" + key_defs +
          ") ON COMMIT DELETE ROWS");
}

enum class RowsToCopy {
  kDeletedKeys,  // the keys of the deleted rows, into the deletes table
  kUpserts,      // keys and values of the other rows, into the staging table
};

// libpqxx 6.4's stream_to only takes fixed tuples; a view's column count is
// only known at run time, so lines are built here in COPY's text format and
// handed to tablewriter (deprecated, but the one 6.4 API that writes a raw
// COPY line).
void CopyRows(pqxx::work& tx, const std::string& into, const TableSpec& table,
              const std::vector<RowWrite>& rows, RowsToCopy which) {
  const bool deletes = which == RowsToCopy::kDeletedKeys;
  // tablewriter pastes the names as given: quoted, a column may be called
  // "offset" or "order".
  std::vector<std::string> columns;
  for (const auto& c : table.key_columns) columns.push_back(QuoteIdent(c.name));
  if (!deletes)
    for (const auto& c : table.value_columns) columns.push_back(QuoteIdent(c.name));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter copy(tx, into, columns.begin(), columns.end());
  std::string line;
  for (const RowWrite& row : rows) {
    if (row.deleted != deletes) continue;
    line.clear();
    for (const auto& k : row.key) {
      if (!line.empty()) line += '\t';
      AppendCopyField(k, &line);
    }
    if (!deletes) {
      for (const auto& v : row.values) {
        line += '\t';
        if (v)
          AppendCopyField(*v, &line);
        else
          line += "\\N";
      }
    }
    copy.write_raw_line(line);
  }
  copy.complete();
#pragma GCC diagnostic pop
}

// Applies the staged upserts and appends each row as stored after merging
// (only Postgres knows it) to `full_rows`, with the partition and offset of
// the write it came from.
void UpsertReturningStoredRows(pqxx::work& tx, const std::string& upsert_returning, const TableSpec& table,
                               const std::vector<RowWrite>& rows, std::vector<RowWrite>* full_rows) {
  std::map<std::vector<std::string>, const RowWrite*> by_key;
  for (const RowWrite& row : rows)
    if (!row.deleted) by_key[row.key] = &row;
  for (const auto& r : tx.exec(upsert_returning)) {
    RowWrite full = RowFromText(r, table.key_columns.size());
    if (auto it = by_key.find(full.key); it != by_key.end()) {
      full.partition = it->second->partition;
      full.offset = it->second->offset;
    }
    full_rows->push_back(std::move(full));
  }
}

// Moves each partition's stored next offset, in the transaction of the rows
// it covers. Throws OffsetMoved when another process moved it first.
void AdvanceOffsets(pqxx::work& tx, const std::string& owner, const std::string& topic,
                    const std::vector<OffsetAdvance>& offsets) {
  for (const OffsetAdvance& o : offsets) {
    pqxx::result r;
    if (o.expected_next < 0) {
      r = tx.exec_params(
          "INSERT INTO freshet.offsets (view_name, topic, partition, next_offset) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT DO NOTHING",
          owner, topic, o.partition, o.next_offset);
    } else {
      r = tx.exec_params(
          "UPDATE freshet.offsets SET next_offset = $4, updated_at = now() "
          "WHERE view_name = $1 AND topic = $2 AND partition = $3 AND next_offset = $5",
          owner, topic, o.partition, o.next_offset, o.expected_next);
    }
    if (r.affected_rows() != 1)
      throw OffsetMoved("partition " + std::to_string(o.partition) + ": stored offset is no longer " +
                        std::to_string(o.expected_next) + " (another process advanced it)");
  }
}

// Delivered at commit: SQL clients can react to fresh data without polling.
void NotifyFlush(pqxx::work& tx, const std::string& view, const std::string& owner,
                 const std::vector<OffsetAdvance>& offsets) {
  nlohmann::json offsets_json = nlohmann::json::object();
  for (const OffsetAdvance& o : offsets) offsets_json[std::to_string(o.partition)] = o.next_offset;
  tx.exec_params("SELECT pg_notify('freshet_flush', $1)",
                 nlohmann::json{{"view", view}, {"table", owner}, {"next_offsets", offsets_json}}.dump());
}

}  // namespace

Status ApplyMigrations(pqxx::connection& conn) {
  try {
    pqxx::work tx(conn);
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockId) + ")");
    tx.exec("CREATE SCHEMA IF NOT EXISTS freshet");
    tx.exec(
        "CREATE TABLE IF NOT EXISTS freshet.schema_migrations ("
        " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& [name, sql] : kMigrations) {
      if (!tx.exec_params("SELECT 1 FROM freshet.schema_migrations WHERE name = $1", name).empty()) continue;
      tx.exec(sql);
      tx.exec_params("INSERT INTO freshet.schema_migrations (name) VALUES ($1)", name);
      spdlog::info("postgres: applied migration {}", name);
    }
    tx.commit();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("applying migrations: ") + e.what());
  }
}

Result<std::unique_ptr<PostgresSink>> PostgresSink::Open(const std::string& url, const std::string& topic,
                                                         const TableSpec& table) {
  auto conn = ConnectPostgres(url);
  if (!conn.ok()) return conn.status();
  std::unique_ptr<PostgresSink> sink(new PostgresSink());
  sink->url_ = url;
  sink->topic_ = topic;
  sink->table_ = table;
  sink->conn_ = std::move(conn.value());
  FRESHET_RETURN_IF_ERROR(ApplyMigrations(*sink->conn_));
  FRESHET_RETURN_IF_ERROR(sink->FollowRebuild());
  FRESHET_RETURN_IF_ERROR(sink->Prepare());
  return sink;
}

PostgresSink::~PostgresSink() = default;

Status PostgresSink::FollowRebuild() {
  if (table_.version.find('r') != std::string::npos) return Status::Ok();  // a rebuild itself
  try {
    pqxx::nontransaction tx(*conn_);
    auto live = tx.exec_params(
        "SELECT version FROM freshet.views WHERE name = $1 AND to_regclass(quote_ident($2) || '.' || "
        "quote_ident(table_name)) "
        "IS NOT NULL",
        table_.view_name, table_.schema);
    if (live.empty() || live[0][0].is_null()) return Status::Ok();
    std::string version = live[0][0].as<std::string>();
    if (version.rfind(table_.version + "r", 0) == 0) {
      spdlog::info("view {}: following the rebuilt version {}", table_.view_name, version);
      table_.version = version;
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": reading the registry: " + e.what());
  }
}

Result<std::string> PostgresSink::RebuildProgress() {
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    pqxx::nontransaction tx(*conn_);
    auto r =
        tx.exec_params("SELECT build_progress::text FROM freshet.views WHERE name = $1", table_.view_name);
    return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": reading the registry: " + e.what());
  }
}

std::string PostgresSink::ProcessStartedAt() {
  // The database's clock at this process's first Open: compared with
  // published_at, which the database's clock also wrote.
  static std::mutex mu;
  static std::string started;
  std::lock_guard lock(mu);
  if (started.empty()) {
    pqxx::nontransaction tx(*conn_);
    started = tx.exec("SELECT now()::text")[0][0].as<std::string>();
  }
  return started;
}

bool PostgresSink::IsRebuildOf(const std::string& table, const TableSpec& t) {
  // "<view>__v<hash>r<stamp>" is a rebuild of "<view>__v<hash>": the same definition.
  return table.rfind(t.table_name() + "r", 0) == 0 || t.table_name().rfind(table + "r", 0) == 0;
}

Status PostgresSink::StillCurrent() {
  if (building_) return Status::Ok();
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    pqxx::nontransaction tx(*conn_);
    auto live = tx.exec_params("SELECT table_name FROM freshet.views WHERE name = $1", table_.view_name);
    if (live.empty() || live[0][0].is_null() || live[0][0].as<std::string>() == table_.table_name())
      return Status::Ok();
    return Status::Conflict("view " + table_.view_name + ": " + live[0][0].as<std::string>() + " replaced " +
                            table_.table_name() + " (another version was swapped in)");
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": reading the registry: " + e.what());
  }
}

Status PostgresSink::Prepare() {
  BuildStatements();
  return CreateTable();
}

void PostgresSink::BuildStatements() {
  const TableSpec& t = table_;
  std::string table = QualifiedTable(t);
  std::string updates, key_match;
  for (const auto& c : t.value_columns)
    updates += (updates.empty() ? "" : ", ") + QuoteIdent(c.name) + " = " + MergeExpression(c);
  for (const auto& c : t.key_columns)
    key_match += (key_match.empty() ? "" : " AND ") + std::string("target.") + QuoteIdent(c.name) + " = d." +
                 QuoteIdent(c.name);
  delete_sql_ =
      "DELETE FROM " + table + " AS target USING " + QuoteIdent(DeletesName(t)) + " AS d WHERE " + key_match;
  upsert_sql_ = "INSERT INTO " + table + " AS target (" + ColumnList(t) + ") SELECT " + ColumnList(t) +
                " FROM " + QuoteIdent(StagingName(t)) + " ON CONFLICT (" + KeyColumnList(t) + ") DO " +
                (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
  returning_sql_.clear();
  merges_ = false;
  for (const auto& c : t.key_columns)
    returning_sql_ += (returning_sql_.empty() ? " RETURNING " : ", ") + QuoteIdent(c.name) + "::text";
  for (const auto& c : t.value_columns) {
    returning_sql_ += ", target." + QuoteIdent(c.name) + "::text";
    merges_ |= c.merge != Merge::kReplace;
  }
}

Status PostgresSink::CreateTable() {
  const TableSpec& t = table_;
  std::string table = QualifiedTable(t);
  std::string defs;
  for (const auto& c : t.key_columns)
    defs += (defs.empty() ? "" : ", ") + QuoteIdent(c.name) + " " + c.sql_type + " NOT NULL";
  for (const auto& c : t.value_columns) defs += ", " + QuoteIdent(c.name) + " " + c.sql_type;
  try {
    const std::string process_started = ProcessStartedAt();  // before the transaction: it uses the connection
    pqxx::work tx(*conn_);
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockId) + ")");
    tx.exec("CREATE TABLE IF NOT EXISTS " + table + " (" + defs + ", PRIMARY KEY (" + KeyColumnList(t) +
            "))");
    auto live = tx.exec_params(
        "SELECT table_name, to_regclass(quote_ident($2) || '.' || quote_ident(table_name)) IS NOT NULL, "
        "coalesce(published_at > $3::timestamptz, false), published_at::text "
        "FROM freshet.views WHERE name = $1 FOR UPDATE",
        t.view_name, t.schema, process_started);
    bool other_live = !live.empty() && !live[0][0].is_null() &&
                      live[0][0].as<std::string>() != t.table_name() && live[0][1].as<bool>();
    if (other_live && live[0][2].as<bool>() && !IsRebuildOf(live[0][0].as<std::string>(), t)) {
      // Another process published another definition after this one
      // started: this process is the outdated one. Building its own
      // version and swapping it back would make the two rebuild each
      // other's tables forever.
      return Status::Conflict(
          "view " + t.view_name + ": another process published " + live[0][0].as<std::string>() +
          " (another definition) at " + live[0][3].as<std::string>() + ", after this process started with " +
          t.table_name() + "; give every process of a view the same definition, then restart this one");
    }
    if (other_live) {
      building_ = true;
      live_table_ = live[0][0].as<std::string>();
      tx.exec_params("UPDATE freshet.views SET building_table = $2, updated_at = now() WHERE name = $1",
                     t.view_name, t.table_name());
      spdlog::info("view {}: building {} beside the live {}", t.view_name, t.table_name(),
                   live[0][0].as<std::string>());
    } else {
      FRESHET_RETURN_IF_ERROR(PublishView(tx));
    }
    tx.commit();
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + t.view_name + ": creating table: " + e.what());
  }
  return Status::Ok();
}

Status PostgresSink::PublishView(pqxx::dbtransaction& tx) {
  const TableSpec& t = table_;
  std::string select = t.view_select.empty() ? "*" : t.view_select;
  const std::string create = " VIEW " + QualifiedView(t) + " AS SELECT " + select + " FROM " +
                             QualifiedTable(t) +
                             (t.view_group_by.empty() ? "" : " GROUP BY " + t.view_group_by);
  // Replaced in place when the columns allow it (same ones, or new ones at
  // the end): users' SQL views on top of it keep working. Otherwise it is
  // dropped and created; if the user's views depend on it, that fails and
  // says which, and the old version stays live.
  bool replaced = false;
  try {
    pqxx::subtransaction attempt(tx, "freshet_replace_view");
    attempt.exec("CREATE OR REPLACE" + create);
    attempt.commit();
    replaced = true;
  } catch (const pqxx::sql_error&) {
  }
  if (!replaced) {
    try {
      pqxx::subtransaction attempt(tx, "freshet_recreate_view");
      attempt.exec("DROP VIEW IF EXISTS " + QualifiedView(t));
      attempt.exec("CREATE" + create);
      attempt.commit();
    } catch (const pqxx::sql_error& e) {
      std::string what = e.what();  // its DETAIL names the dependent views
      for (char& c : what)
        if (c == '\n') c = ' ';
      return Status::Conflict(
          "view " + t.view_name + ": cannot publish version " + t.version +
          " (its columns differ from the live version's and other views depend on it; drop or "
          "change them first): " +
          what);
    }
  }
  tx.exec("GRANT SELECT ON " + QualifiedView(t) + " TO freshet_reader");
  tx.exec_params(
      "INSERT INTO freshet.views (name, version, table_name, building_table, state, published_at) "
      "VALUES ($1, $2, $3, NULL, 'live', now()) "
      "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, table_name = EXCLUDED.table_name, "
      // Republishing the same table (a restart) keeps a rebuild in progress.
      "building_table = CASE WHEN freshet.views.table_name = EXCLUDED.table_name THEN "
      "freshet.views.building_table END, "
      "build_progress = CASE WHEN freshet.views.table_name = EXCLUDED.table_name THEN "
      "freshet.views.build_progress END, "
      "state = 'live', updated_at = now(), published_at = now()",
      t.view_name, t.version, t.table_name());
  return Status::Ok();
}

Result<std::vector<nlohmann::json>> PostgresSink::ReadLiveRows(size_t limit) {
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    // The stable SQL view selects from the live version, whatever its columns.
    pqxx::read_transaction tx(*conn_);
    auto result = tx.exec("SELECT row_to_json(v)::text FROM " + QualifiedView(table_) + " AS v LIMIT " +
                          std::to_string(limit));
    std::vector<nlohmann::json> rows;
    rows.reserve(result.size());
    for (const auto& r : result) rows.push_back(nlohmann::json::parse(r[0].c_str(), nullptr, false));
    return rows;
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": reading the live version: " + e.what());
  }
}

Result<std::map<int32_t, int64_t>> PostgresSink::LoadLiveOffsets() {
  return LoadOffsetsOf(building_ ? live_table_ : table_.table_name());
}

Status PostgresSink::SwapIn() {
  const TableSpec& t = table_;
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    pqxx::work tx(*conn_);
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockId) + ")");
    auto live =
        tx.exec_params("SELECT table_name FROM freshet.views WHERE name = $1 FOR UPDATE", t.view_name);
    std::string old = live.empty() || live[0][0].is_null() ? "" : live[0][0].as<std::string>();
    if (old != t.table_name()) {
      FRESHET_RETURN_IF_ERROR(PublishView(tx));
      if (!old.empty()) {
        tx.exec("DROP TABLE IF EXISTS " + QuoteIdent(t.schema) + "." + QuoteIdent(old));
        tx.exec_params("DELETE FROM freshet.offsets WHERE view_name = $1", old);
      }
    }
    tx.commit();
    building_ = false;
    spdlog::info("view {}: {} is live{}", t.view_name, t.table_name(),
                 old.empty() ? "" : ", " + old + " dropped");
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + t.view_name + ": swapping in " + t.table_name() + ": " + e.what());
  }
}

Status PostgresSink::EnsureConnected() {
  if (conn_ && conn_->is_open()) return Status::Ok();
  auto conn = ConnectPostgres(url_);
  if (!conn.ok()) return conn.status().WithContext("view " + table_.view_name);
  conn_ = std::move(conn.value());
  staging_backend_pid_ = -1;  // the temp staging tables died with the old session
  spdlog::info("view {}: reconnected to postgres", table_.view_name);
  return Status::Ok();
}

Result<std::map<int32_t, int64_t>> PostgresSink::LoadOffsets() { return LoadOffsetsOf(table_.table_name()); }

Result<std::map<int32_t, int64_t>> PostgresSink::LoadOffsetsOf(const std::string& table_name) {
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    pqxx::nontransaction tx(*conn_);
    std::map<int32_t, int64_t> out;
    for (const auto& row : tx.exec_params(
             "SELECT partition, next_offset FROM freshet.offsets WHERE view_name = $1 AND topic = $2",
             table_name, topic_))
      out[row[0].as<int32_t>()] = row[1].as<int64_t>();
    return out;
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": loading offsets: " + e.what());
  }
}

Result<std::vector<RowWrite>> PostgresSink::ReadRows(size_t limit) {
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  std::string columns, keys;
  for (const auto& c : table_.key_columns) {
    columns += (columns.empty() ? "" : ", ") + QuoteIdent(c.name) + "::text";
    keys += (keys.empty() ? "" : ", ") + QuoteIdent(c.name);
  }
  for (const auto& c : table_.value_columns) columns += ", " + QuoteIdent(c.name) + "::text";
  try {
    pqxx::read_transaction tx(*conn_);
    auto result = tx.exec("SELECT " + columns + " FROM " + QualifiedTable(table_) + " ORDER BY " + keys +
                          " LIMIT " + std::to_string(limit));
    std::vector<RowWrite> rows;
    rows.reserve(result.size());
    for (const auto& r : result) rows.push_back(RowFromText(r, table_.key_columns.size()));
    return rows;
  } catch (const std::exception& e) {
    return Status::Unavailable("view " + table_.view_name + ": reading rows: " + e.what());
  }
}

Status PostgresSink::Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
                           std::vector<RowWrite>* full_rows) {
  const std::string& view = table_.view_name;
  const std::string owner = table_.table_name();  // offsets belong to this version's table
  FRESHET_RETURN_IF_ERROR(EnsureConnected());
  try {
    pqxx::work tx(*conn_);
    // The staging table is temporary: a new session (after a reconnect) needs its own.
    if (staging_backend_pid_ != conn_->backendpid()) {
      CreateStagingTables(tx, table_);
      staging_backend_pid_ = conn_->backendpid();
    }
    size_t deletes = 0;
    for (const RowWrite& row : rows) deletes += row.deleted;
    if (deletes > 0) {
      CopyRows(tx, DeletesName(table_), table_, rows, RowsToCopy::kDeletedKeys);
      tx.exec(delete_sql_);
    }
    if (rows.size() > deletes) {
      CopyRows(tx, StagingName(table_), table_, rows, RowsToCopy::kUpserts);
      if (full_rows && merges_) {
        UpsertReturningStoredRows(tx, upsert_sql_ + returning_sql_, table_, rows, full_rows);
      } else {
        tx.exec(upsert_sql_);
      }
    }
    if (full_rows) {
      for (const RowWrite& row : rows)
        if (row.deleted || !merges_) full_rows->push_back(row);
    }
    AdvanceOffsets(tx, owner, topic_, offsets);
    NotifyFlush(tx, view, owner, offsets);
    tx.commit();
    return Status::Ok();
  } catch (const OffsetMoved& e) {
    staging_backend_pid_ = -1;
    return Status::Conflict("view " + view + ": " + e.what());
  } catch (const pqxx::broken_connection& e) {
    staging_backend_pid_ = -1;
    return Status::Unavailable("view " + view + ": postgres connection lost: " + e.what());
  } catch (const std::exception& e) {
    staging_backend_pid_ = -1;
    return Status::Unavailable("view " + view + ": write failed: " + e.what());
  }
}

}  // namespace freshet
