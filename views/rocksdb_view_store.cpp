#include "views/rocksdb_view_store.h"

#include <cctype>
#include <cmath>
#include <ctime>

#include "core/json_text.h"
#include "views/partition_rows.h"

namespace freshet {

// A table of `view`: "<view>__v" followed by a version (letters and digits).
static bool IsVersionOf(const std::string& table, const std::string& view) {
  const std::string prefix = view + "__v";
  if (table.size() <= prefix.size() || table.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < table.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(table[i]))) return false;
  return true;
}

Result<std::unique_ptr<RocksDbViewStore>> RocksDbViewStore::Open(RocksDbStore& store,
                                                                 const std::string& topic,
                                                                 const TableSpec& definition, bool rebuild) {
  // "p": rows are stored as partition shares (views/partition_rows.h). A
  // table of the earlier layout is another version, rebuilt beside it.
  TableSpec table = definition;
  table.version += "p";
  auto alias = [&](const std::string& name) -> Result<std::string> {
    auto got = store.ResolveAlias(name);
    if (got.ok()) return *got;
    if (got.status().code() == StatusCode::kNotFound) return std::string();
    return got.status();
  };
  auto live = alias(table.view_name);
  if (!live.ok()) return live.status();
  auto unfinished = alias(BuildingAlias(table.view_name));
  if (!unfinished.ok()) return unfinished.status();
  const std::string plain = table.table_name();
  // This definition: the plain version or a rebuild of it.
  auto same_definition = [&](const std::string& t) { return t == plain || t.rfind(plain + "r", 0) == 0; };

  TableSpec chosen = table;
  auto use = [&](const std::string& name) { chosen.version = name.substr(table.view_name.size() + 3); };
  bool build = false;
  if (!unfinished->empty() && *unfinished != *live && same_definition(*unfinished)) {
    use(*unfinished);  // resume what a previous run of this process started
    build = true;
  } else if (rebuild) {
    chosen.version = table.version + "r" + std::to_string(std::time(nullptr));
    build = !live->empty();
  } else if (!live->empty() && same_definition(*live)) {
    use(*live);
  } else {
    build = !live->empty();  // another definition is live: build beside it
  }
  std::unique_ptr<RocksDbViewStore> out(new RocksDbViewStore(store, topic, chosen));
  FRESHET_RETURN_IF_ERROR(store.EnsureTable(out->table_name_));
  if (build) {
    out->live_table_ = *live;
    FRESHET_RETURN_IF_ERROR(store.SetAlias(BuildingAlias(table.view_name), out->table_name_));
  } else {
    FRESHET_RETURN_IF_ERROR(store.SetAlias(table.view_name, out->table_name_));
    (void)store.RemoveAlias(BuildingAlias(table.view_name));
    FRESHET_RETURN_IF_ERROR(out->DropOtherVersions(out->table_name_));
  }
  return out;
}

Status RocksDbViewStore::SwapIn() {
  if (live_table_.empty()) return Status::Ok();
  // One write: readers resolve the old table or the new one.
  FRESHET_RETURN_IF_ERROR(store_.SetAlias(table_.view_name, table_name_));
  live_table_.clear();
  (void)store_.RemoveAlias(BuildingAlias(table_.view_name));
  return DropOtherVersions(table_name_);
}

Status RocksDbViewStore::DropOtherVersions(const std::string& keep) {
  for (const std::string& t : store_.Tables())
    if (t != keep && IsVersionOf(t, table_.view_name)) FRESHET_RETURN_IF_ERROR(store_.DropTable(t));
  return Status::Ok();
}

Result<std::map<int32_t, int64_t>> RocksDbViewStore::LiveOffsets() {
  return store_.LoadOffsets(live_table_.empty() ? table_name_ : live_table_, topic_);
}

Result<std::map<int32_t, int64_t>> RocksDbViewStore::LoadOffsets() {
  return store_.LoadOffsets(table_name_, topic_);
}

Status RocksDbViewStore::Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
                               std::vector<RowChange>* changes) {
  std::vector<KvWrite> writes;
  writes.reserve(rows.size());
  const std::string& table = table_name_;
  bool merges = false;
  for (const auto& c : table_.value_columns) merges |= c.merge != Merge::kReplace;
  auto value_json = [&](const RowWrite& row) {
    nlohmann::json value = nlohmann::json::object();
    for (size_t i = 0; i < table_.value_columns.size() && i < row.values.size(); ++i)
      value[table_.value_columns[i].name] = TypedColumn(row.values[i], table_.value_columns[i].sql_type);
    return value;
  };
  // Shares merged earlier in this batch: the engine hands over one run of
  // rows per partition, so a share can come twice in one write.
  std::map<std::string, nlohmann::json> merged;
  std::vector<const RowWrite*> merged_rows;  // for the feed, once all are merged
  for (const RowWrite& row : rows) {
    KvWrite w;
    const std::string encoded = EncodeKey(row.key);
    w.key = ShareKey(encoded, row.partition);
    if (!row.deleted && !merges) {
      // Replaced rows (a latest-row view): the JSON text is written directly.
      std::string text = "{";
      for (size_t i = 0; i < table_.value_columns.size() && i < row.values.size(); ++i) {
        if (i) text.push_back(',');
        AppendJsonString(table_.value_columns[i].name, &text);
        text.push_back(':');
        AppendTypedColumn(&text, row.values[i], table_.value_columns[i].sql_type);
      }
      text.push_back('}');
      w.value = std::move(text);
      if (changes) {
        nlohmann::json value = value_json(row);
        changes->push_back(FullRow(row, value));
        changes->back().has_share = true;
        changes->back().share = std::move(value);
      }
    } else if (!row.deleted) {
      // Deltas (an aggregate): merged with the stored share.
      nlohmann::json value = value_json(row);
      auto earlier = merged.find(w.key);
      nlohmann::json old;
      if (earlier != merged.end()) {
        old = earlier->second;
      } else {
        auto stored = store_.Get(table, w.key);
        if (!stored.ok()) return stored.status();
        if (*stored) old = nlohmann::json::parse(**stored, nullptr, false);
      }
      for (const auto& c : table_.value_columns)
        value[c.name] = CombineColumn(
            c, old.is_object() ? old.value(c.name, nlohmann::json()) : nlohmann::json(), value[c.name]);
      w.value = value.dump();
      merged[w.key] = std::move(value);
      if (changes) merged_rows.push_back(&row);
    } else {
      merged.erase(w.key);
      if (changes) changes->push_back(RowChange{row.key, nullptr, row.partition, row.offset, true, nullptr});
    }
    writes.push_back(std::move(w));
  }
  FRESHET_RETURN_IF_ERROR(
      store_.Write(table, topic_, writes, offsets).WithContext("view " + table_.view_name + " (rocksdb)"));
  // A feed sends the whole row: every local partition's share of it, as
  // committed now (this thread is the table's only writer).
  for (const RowWrite* row : merged_rows) {
    nlohmann::json whole;
    Status read =
        store_.ScanEach(table, SharesOf(EncodeKey(row->key)), [&](std::string_view, std::string_view value) {
          AddShare(table_, nlohmann::json::parse(value, nullptr, false), &whole);
          return true;
        });
    if (!read.ok())
      return read.WithContext("view " + table_.view_name + " (rocksdb): reading a changed row back");
    changes->push_back(FullRow(*row, whole.is_object() ? std::move(whole) : nlohmann::json::object()));
    changes->back().has_share = true;
    changes->back().share = merged.at(ShareKey(EncodeKey(row->key), row->partition));
  }
  return Status::Ok();
}

RowChange RocksDbViewStore::FullRow(const RowWrite& row, nlohmann::json value) const {
  return RowChange{row.key, RowWithKey(table_, row.key, std::move(value)), row.partition, row.offset, false,
                   nullptr};
}

Result<std::vector<RowChange>> RocksDbViewStore::ReadRows(const std::string& encoded_prefix, size_t limit) {
  // While a new version is built, readers (and feed snapshots) get the live one.
  auto shares =
      ReadShares(store_, live_table_.empty() ? table_name_ : live_table_, encoded_prefix, {}, limit);
  if (!shares.ok()) return shares.status();
  std::vector<RowChange> out;
  for (auto& [key, value] : MergeShares(table_, std::move(*shares), limit)) {
    RowWrite row;
    row.key = DecodeKey(key);
    out.push_back(FullRow(row, value.is_object() ? std::move(value) : nlohmann::json::object()));
  }
  return out;
}

Result<std::vector<RowShare>> RocksDbViewStore::ReadPartitionShares(const std::string& encoded_prefix,
                                                                    const std::set<int32_t>& partitions,
                                                                    size_t limit) {
  return ReadShares(store_, live_table_.empty() ? table_name_ : live_table_, encoded_prefix, partitions,
                    limit);
}

Result<std::vector<RowShare>> RocksDbViewStore::ReadShares(const RocksDbStore& store,
                                                           const std::string& table,
                                                           const std::string& encoded_prefix,
                                                           const std::set<int32_t>& partitions,
                                                           size_t limit) {
  std::vector<RowShare> out;
  std::string last_key;
  size_t keys = 0;
  Status st = store.ScanEach(table, encoded_prefix, [&](std::string_view stored, std::string_view value) {
    std::string_view key;
    int32_t partition = -1;
    if (!SplitShareKey(stored, &key, &partition)) return true;
    if (!partitions.empty() && !partitions.count(partition)) return true;
    if (keys == 0 || key != last_key) {
      if (keys == limit) return false;
      ++keys;
      last_key = std::string(key);
    }
    out.push_back(RowShare{std::string(key), partition, nlohmann::json::parse(value, nullptr, false)});
    return true;
  });
  if (!st.ok()) return st;
  return out;
}

std::string RocksDbViewStore::KeyFromUrl(const std::string& text) {
  std::string key = text;
  for (auto& c : key)
    if (c == '/') c = '\x1f';
  return key;
}

nlohmann::json RocksDbViewStore::RowJson(const std::string& key, const std::string& value) {
  return {{"key", DecodeKey(key)}, {"value", nlohmann::json::parse(value, nullptr, false)}};
}

}  // namespace freshet
