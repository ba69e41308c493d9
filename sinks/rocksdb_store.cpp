#include "sinks/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

namespace freshet {
namespace {

constexpr std::string_view kMetaFamily = "freshet.meta";
constexpr std::string_view kOffsetsFamily = "freshet.offsets";
constexpr std::string_view kReservedPrefix = "freshet.";
// Meta keys carry a kind prefix so that other records can join aliases later.
constexpr std::string_view kAliasPrefix = "alias:";
constexpr uint64_t kMaxTotalWalBytes = 128ull << 20;

// RocksDB's Status into ours, with `context` in front. The message of a
// refused LOCK is RocksDB's own ("While lock file: .../LOCK: Resource
// temporarily unavailable", or "lock hold by current process" in-process);
// it is kept, but it does not say what to do, so it gets a sentence that does.
Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  std::string m = context + ": " + s.ToString();
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return Status::NotFound(m);
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kNotSupported:
      return Status::InvalidArgument(m);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kIOError:
      return Status::Unavailable(m);
    case rocksdb::Status::kTimedOut:
      return Status::Timeout(m);
    default:
      return Status::Internal(m);
  }
}

std::string OffsetsTablePrefix(const std::string& table) { return table + '\0'; }

std::string OffsetsTopicPrefix(const std::string& table, const std::string& topic) {
  return table + '\0' + topic + '\0';
}

void AppendBigEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t ReadBigEndian(std::string_view in) {
  uint64_t v = 0;
  for (unsigned char c : in) v = (v << 8) | c;
  return v;
}

std::string OffsetKey(const std::string& table, const std::string& topic, int32_t partition) {
  std::string key = OffsetsTopicPrefix(table, topic);
  AppendBigEndian(static_cast<uint32_t>(partition), 4, &key);
  return key;
}

std::string OffsetValue(int64_t next_offset) {
  std::string v;
  AppendBigEndian(static_cast<uint64_t>(next_offset), 8, &v);
  return v;
}

// The smallest key greater than every key that starts with `prefix`; empty
// when there is none (the prefix is empty or all 0xff).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

// '\0' separates the parts of an offsets key, so it may not occur in them.
Status CheckName(const std::string& what, const std::string& name) {
  if (name.empty()) return Status::InvalidArgument(what + " name is empty");
  if (name.find('\0') != std::string::npos)
    return Status::InvalidArgument(what + " name '" + name.substr(0, name.find('\0')) +
                                   "...' contains a NUL byte");
  return Status::Ok();
}

Status CheckTableName(const std::string& table) {
  FRESHET_RETURN_IF_ERROR(CheckName("table", table));
  if (table == rocksdb::kDefaultColumnFamilyName || table.starts_with(kReservedPrefix))
    return Status::InvalidArgument("table name '" + table + "' is reserved by the store (\"default\", \"" +
                                   std::string(kReservedPrefix) + "*\")");
  return Status::Ok();
}

bool IsTableFamily(const std::string& name) {
  return name != rocksdb::kDefaultColumnFamilyName && !name.starts_with(kReservedPrefix);
}

// One factory for every family, so that all tables share one block cache of
// the configured size instead of each getting its own.
std::shared_ptr<rocksdb::TableFactory> MakeTableFactory(const RocksDbStore::Options& options) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_mb << 20);
  // Point queries of absent keys are common (a product never sold); a whole-key
  // bloom filter answers most of them without reading a block.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  return std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(table));
}

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::TableFactory>& table_factory) {
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory = table_factory;
  return cf;
}

}  // namespace

void RocksDbStore::ColumnFamilyCloser::operator()(rocksdb::ColumnFamilyHandle* handle) const {
  // Fails only for DefaultColumnFamily()'s handle, which the store never holds.
  db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
}

RocksDbStore::RocksDbStore(std::string path, const Options& options)
    : path_(std::move(path)), options_(options) {}

RocksDbStore::~RocksDbStore() {
  tables_.clear();
  offsets_cf_.reset();
  meta_cf_.reset();
  default_cf_.reset();
  // Every write is already in the WAL; a failing close loses nothing the
  // next Open would not recover, and a destructor cannot report it anyway.
  if (db_) db_->Close().PermitUncheckedError();
}

std::string RocksDbStore::Context(const std::string& table) const {
  return "rocksdb store " + path_ + ": table " + table;
}

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(const std::string& path, const Options& options) {
  const std::string context = "rocksdb store " + path;
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;  // the store's own families, on first open
  // Every Write also touches "freshet.offsets", whose memtable stays tiny and
  // so never fills up and flushes by itself; until it does, RocksDB keeps
  // every WAL file it has data in. The default bound (4x the sum of all
  // write buffers, ~2 GB here) let the WAL grow by ~150 MB/s in a test; this
  // bound forces the small families to flush, keeping recovery short.
  db_options.max_total_wal_size = kMaxTotalWalBytes;

  // A database that does not exist yet has no families to list; any other
  // failure to list them (corruption, permissions) is reported.
  std::vector<std::string> names;
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
    if (!s.ok()) return FromRocks(s, context + ": listing column families");
  }
  for (std::string_view own :
       {std::string_view(rocksdb::kDefaultColumnFamilyName), kMetaFamily, kOffsetsFamily})
    if (std::find(names.begin(), names.end(), own) == names.end()) names.emplace_back(own);

  std::shared_ptr<rocksdb::TableFactory> table_factory = MakeTableFactory(options);
  const rocksdb::ColumnFamilyOptions cf_options = FamilyOptions(table_factory);
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& name : names) families.emplace_back(name, cf_options);

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, families, &handles, &raw_db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("LOCK") != std::string::npos) {
      return Status::Unavailable(context + ": the database is in use: another RocksDbStore (in this or " +
                                 "another process) holds " + path + "/LOCK, and RocksDB allows one " +
                                 "writer per database (" + s.ToString() + ")");
    }
    return FromRocks(s, context + ": opening");
  }

  std::unique_ptr<RocksDbStore> store(new RocksDbStore(path, options));
  store->db_.reset(raw_db);
  store->table_factory_ = std::move(table_factory);
  ColumnFamilyCloser closer{raw_db};
  for (size_t i = 0; i < handles.size(); ++i) {
    ColumnFamily handle(handles[i], closer);
    if (names[i] == rocksdb::kDefaultColumnFamilyName)
      store->default_cf_ = std::move(handle);
    else if (names[i] == kMetaFamily)
      store->meta_cf_ = std::move(handle);
    else if (names[i] == kOffsetsFamily)
      store->offsets_cf_ = std::move(handle);
    else if (IsTableFamily(names[i]))
      store->tables_.emplace(names[i], std::move(handle));
    // A "freshet.*" family this version does not know is left alone (its
    // handle is destroyed here): a newer freshet may have written it.
  }
  return store;
}

Result<rocksdb::ColumnFamilyHandle*> RocksDbStore::FindTable(const std::string& table) const {
  auto it = tables_.find(table);
  if (it == tables_.end()) return Status::NotFound(Context(table) + ": no such table");
  return it->second.get();
}

Status RocksDbStore::DeleteOffsetsOf(const std::string& table) {
  const std::string begin = OffsetsTablePrefix(table);
  const std::string end = PrefixEnd(begin);
  rocksdb::WriteOptions wo;
  wo.sync = true;  // rare, and a drop must not come back after a machine crash
  return FromRocks(db_->DeleteRange(wo, offsets_cf_.get(), begin, end),
                   Context(table) + ": deleting offsets");
}

Status RocksDbStore::EnsureTable(const std::string& table) {
  FRESHET_RETURN_IF_ERROR(CheckTableName(table));
  std::lock_guard write_lock(write_mu_);
  if (tables_.count(table)) return Status::Ok();
  FRESHET_RETURN_IF_ERROR(DeleteOffsetsOf(table));
  rocksdb::ColumnFamilyHandle* raw = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(FamilyOptions(table_factory_), table, &raw);
  if (!s.ok()) return FromRocks(s, Context(table) + ": creating column family");
  ColumnFamily handle(raw, ColumnFamilyCloser{db_.get()});
  std::unique_lock tables_lock(tables_mu_);
  tables_.emplace(table, std::move(handle));
  return Status::Ok();
}

Status RocksDbStore::DropTable(const std::string& table) {
  FRESHET_RETURN_IF_ERROR(CheckTableName(table));
  std::lock_guard write_lock(write_mu_);
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_.get()));
    for (it->Seek(kAliasPrefix); it->Valid() && it->key().starts_with(kAliasPrefix); it->Next()) {
      if (it->value() == table)
        return Status::Conflict(Context(table) + ": view " +
                                it->key().ToString().substr(kAliasPrefix.size()) +
                                " still resolves to it; point the view at another table first");
    }
    if (!it->status().ok()) return FromRocks(it->status(), Context(table) + ": reading aliases");
  }
  // Offsets go first: a crash between the two steps leaves rows without
  // offsets (EnsureTable of the same name then keeps the stale rows, and
  // the view replays over them) rather than offsets promising rows that are
  // gone.
  FRESHET_RETURN_IF_ERROR(DeleteOffsetsOf(table));
  std::unique_lock tables_lock(tables_mu_);
  auto found = tables_.find(table);
  if (found == tables_.end()) return Status::Ok();
  rocksdb::Status s = db_->DropColumnFamily(found->second.get());
  if (!s.ok()) return FromRocks(s, Context(table) + ": dropping column family");
  tables_.erase(found);
  return Status::Ok();
}

Status RocksDbStore::SetAlias(const std::string& view, const std::string& table) {
  FRESHET_RETURN_IF_ERROR(CheckName("view", view));
  std::lock_guard write_lock(write_mu_);
  auto found = FindTable(table);
  if (!found.ok()) return found.status().WithContext("view " + view);
  rocksdb::WriteOptions wo;
  wo.sync = true;  // rare, and readers must not go back to the old table after a machine crash
  return FromRocks(db_->Put(wo, meta_cf_.get(), std::string(kAliasPrefix) + view, table),
                   "rocksdb store " + path_ + ": view " + view + ": setting alias to " + table);
}

Status RocksDbStore::RemoveAlias(const std::string& view) {
  FRESHET_RETURN_IF_ERROR(CheckName("view", view));
  std::lock_guard write_lock(write_mu_);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Delete(wo, meta_cf_.get(), std::string(kAliasPrefix) + view),
                   "rocksdb store " + path_ + ": view " + view + ": removing alias");
}

Result<std::string> RocksDbStore::ResolveAlias(const std::string& view) const {
  std::string table;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_cf_.get(), std::string(kAliasPrefix) + view, &table);
  if (s.IsNotFound()) return Status::NotFound("rocksdb store " + path_ + ": view " + view + " has no table");
  if (!s.ok()) return FromRocks(s, "rocksdb store " + path_ + ": view " + view + ": resolving alias");
  return table;
}

Result<std::map<int32_t, int64_t>> RocksDbStore::LoadOffsets(const std::string& table,
                                                             const std::string& topic) const {
  FRESHET_RETURN_IF_ERROR(CheckName("topic", topic));
  {
    std::shared_lock tables_lock(tables_mu_);
    auto found = FindTable(table);
    if (!found.ok()) return found.status();
  }
  const std::string prefix = OffsetsTopicPrefix(table, topic);
  std::map<int32_t, int64_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), offsets_cf_.get()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view partition(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    if (partition.size() != 4 || it->value().size() != 8)
      return Status::Internal(Context(table) + ": topic " + topic + ": malformed offsets record");
    out[static_cast<int32_t>(ReadBigEndian(partition))] =
        static_cast<int64_t>(ReadBigEndian(std::string_view(it->value().data(), 8)));
  }
  if (!it->status().ok())
    return FromRocks(it->status(), Context(table) + ": topic " + topic + ": loading offsets");
  return out;
}

Status RocksDbStore::Write(const std::string& table, const std::string& topic,
                           const std::vector<KvWrite>& rows, const std::vector<OffsetAdvance>& offsets) {
  if (!offsets.empty()) FRESHET_RETURN_IF_ERROR(CheckName("topic", topic));
  // write_mu_ alone keeps tables_ stable (it changes only under write_mu_),
  // and no other write can move an offset between the check and the write.
  std::lock_guard write_lock(write_mu_);
  auto found = FindTable(table);
  if (!found.ok()) return found.status();
  rocksdb::ColumnFamilyHandle* cf = *found;
  // RocksDB counts every key comparison in a thread-local perf context by
  // default: a fifth of a 50,000-row write (bench/projection_bench).
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);

  rocksdb::WriteBatch batch;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const OffsetAdvance& o = offsets[i];
    const std::string where =
        Context(table) + ": topic " + topic + " partition " + std::to_string(o.partition);
    for (size_t j = 0; j < i; ++j)
      if (offsets[j].partition == o.partition)
        return Status::InvalidArgument(where + ": advanced twice in one write");
    if (o.next_offset < 0)
      return Status::InvalidArgument(where + ": negative next offset " + std::to_string(o.next_offset));
    const std::string key = OffsetKey(table, topic, o.partition);
    std::string stored;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), offsets_cf_.get(), key, &stored);
    int64_t stored_next = -1;
    if (s.ok()) {
      if (stored.size() != 8) return Status::Internal(where + ": malformed offsets record");
      stored_next = static_cast<int64_t>(ReadBigEndian(stored));
    } else if (!s.IsNotFound()) {
      return FromRocks(s, where + ": reading offset");
    }
    if (stored_next != o.expected_next)
      return Status::Conflict(
          where + ": the store holds next offset " +
          (stored_next < 0 ? std::string("(nothing)") : std::to_string(stored_next)) +
          ", the writer expected " +
          (o.expected_next < 0 ? std::string("(nothing)") : std::to_string(o.expected_next)) +
          "; nothing written");
    batch.Put(offsets_cf_.get(), key, OffsetValue(o.next_offset)).PermitUncheckedError();
  }
  for (const KvWrite& row : rows) {
    rocksdb::Status s = row.value ? batch.Put(cf, row.key, *row.value) : batch.Delete(cf, row.key);
    if (!s.ok()) return FromRocks(s, Context(table) + ": building write");
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  return FromRocks(db_->Write(wo, &batch),
                   Context(table) + ": writing " + std::to_string(rows.size()) + " rows");
}

Result<std::optional<std::string>> RocksDbStore::Get(const std::string& table, const std::string& key) const {
  std::shared_lock tables_lock(tables_mu_);
  auto found = FindTable(table);
  if (!found.ok()) return found.status();
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);  // as in Write
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), *found, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, Context(table) + ": get");
  return std::optional<std::string>(std::move(value));
}

Result<std::vector<std::pair<std::string, std::string>>> RocksDbStore::Scan(const std::string& table,
                                                                            const std::string& prefix,
                                                                            size_t limit) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (limit == 0) return out;
  Status st = ScanEach(table, prefix, [&](std::string_view key, std::string_view value) {
    out.emplace_back(std::string(key), std::string(value));
    return out.size() < limit;
  });
  if (!st.ok()) return st;
  return out;
}

Status RocksDbStore::ScanEach(const std::string& table, const std::string& prefix,
                              const std::function<bool(std::string_view, std::string_view)>& visit) const {
  std::shared_lock tables_lock(tables_mu_);
  auto found = FindTable(table);
  if (!found.ok()) return found.status();
  // The upper bound stops the iterator at the end of the prefix instead of
  // at the first key beyond it, which matters when deletes left tombstones.
  const std::string end = PrefixEnd(prefix);
  rocksdb::Slice end_slice(end);
  rocksdb::ReadOptions ro;
  if (!end.empty()) ro.iterate_upper_bound = &end_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, *found));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    rocksdb::Slice k = it->key(), v = it->value();
    if (!visit(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), Context(table) + ": scanning prefix");
  return Status::Ok();
}

Status RocksDbStore::Checkpoint(const std::string& dir) const {
  std::error_code ec;
  // RocksDB wants an absolute path; a relative one is taken from our cwd.
  const std::string absolute = std::filesystem::absolute(dir, ec).string();
  const std::string context = "rocksdb store " + path_ + ": checkpoint to " + dir;
  if (ec) return Status::InvalidArgument(context + ": " + ec.message());
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return FromRocks(s, context);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(absolute), context);
}

std::vector<std::string> RocksDbStore::Tables() const {
  std::shared_lock tables_lock(tables_mu_);
  std::vector<std::string> out;
  for (const auto& [name, handle] : tables_) out.push_back(name);
  return out;
}

}  // namespace freshet
