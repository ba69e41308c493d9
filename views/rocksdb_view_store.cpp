#include "views/rocksdb_view_store.h"

#include <cctype>
#include <cmath>
#include <ctime>

#include "sources/json_text.h"

namespace freshet {
namespace {

nlohmann::json Combine(const ColumnSpec& c, const nlohmann::json& stored, const nlohmann::json& written) {
  if (c.merge == Merge::kReplace || stored.is_null()) return written;
  if (written.is_null()) return stored;
  switch (c.merge) {
    case Merge::kAdd:
      if (stored.is_number_integer() && written.is_number_integer()) return stored.get<int64_t>() + written.get<int64_t>();
      return stored.get<double>() + written.get<double>();
    case Merge::kMin: return written < stored ? written : stored;
    case Merge::kMax: return written > stored ? written : stored;
    case Merge::kReplace: break;
  }
  return written;
}

}  // namespace

// A table of `view`: "<view>__v" followed by a version (letters and digits).
static bool IsVersionOf(const std::string& table, const std::string& view) {
  const std::string prefix = view + "__v";
  if (table.size() <= prefix.size() || table.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < table.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(table[i]))) return false;
  return true;
}

Result<std::unique_ptr<RocksDbViewStore>> RocksDbViewStore::Open(RocksDbStore& store, const std::string& topic,
                                                                 const TableSpec& table, bool rebuild) {
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
  for (const RowWrite& row : rows) {
    KvWrite w;
    w.key = EncodeKey(row.key);
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
      if (changes) changes->push_back(FullRow(row, value_json(row)));
    } else if (!row.deleted) {
      // Deltas (an aggregate): merged with the stored row.
      nlohmann::json value = value_json(row);
      auto stored = store_.Get(table, w.key);
      if (!stored.ok()) return stored.status();
      if (*stored) {
        nlohmann::json old = nlohmann::json::parse(**stored, nullptr, false);
        for (const auto& c : table_.value_columns)
          value[c.name] = Combine(c, old.is_object() ? old.value(c.name, nlohmann::json()) : nlohmann::json(), value[c.name]);
      }
      w.value = value.dump();
      if (changes) changes->push_back(FullRow(row, std::move(value)));
    } else if (changes) {
      changes->push_back(RowChange{row.key, nullptr, row.partition, row.offset});
    }
    writes.push_back(std::move(w));
  }
  return store_.Write(table, topic_, writes, offsets).WithContext("view " + table_.view_name + " (rocksdb)");
}

RowChange RocksDbViewStore::FullRow(const RowWrite& row, nlohmann::json value) const {
  RowChange change{row.key, nlohmann::json::object(), row.partition, row.offset};
  for (size_t i = 0; i < table_.key_columns.size() && i < row.key.size(); ++i)
    change.row[table_.key_columns[i].name] = TypedColumn(row.key[i], table_.key_columns[i].sql_type);
  for (auto& [column, v] : value.items()) change.row[column] = std::move(v);
  return change;
}

Result<std::vector<RowChange>> RocksDbViewStore::ReadRows(const std::string& encoded_prefix, size_t limit) {
  // While a new version is built, readers (and feed snapshots) get the live one.
  auto scanned = store_.Scan(live_table_.empty() ? table_name_ : live_table_, encoded_prefix, limit);
  if (!scanned.ok()) return scanned.status();
  std::vector<RowChange> out;
  out.reserve(scanned->size());
  for (const auto& [key, value] : *scanned) {
    nlohmann::json parsed = RowJson(key, value);
    std::vector<std::string> parts = parsed["key"].get<std::vector<std::string>>();
    RowWrite row;
    row.key = parts;
    out.push_back(FullRow(row, parsed["value"].is_object() ? parsed["value"] : nlohmann::json::object()));
  }
  return out;
}


std::string RocksDbViewStore::KeyFromUrl(const std::string& text) {
  std::string key = text;
  for (auto& c : key)
    if (c == '/') c = '\x1f';
  return key;
}

nlohmann::json RocksDbViewStore::RowJson(const std::string& key, const std::string& value) {
  nlohmann::json parts = nlohmann::json::array();
  size_t start = 0;
  for (;;) {
    size_t sep = key.find('\x1f', start);
    parts.push_back(key.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + 1;
  }
  return {{"key", parts}, {"value", nlohmann::json::parse(value, nullptr, false)}};
}

}  // namespace freshet
