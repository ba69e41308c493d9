#include "views/rocksdb_view_store.h"

#include <cmath>

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

Result<std::unique_ptr<RocksDbViewStore>> RocksDbViewStore::Open(RocksDbStore& store, const std::string& topic,
                                                                 const TableSpec& table) {
  FRESHET_RETURN_IF_ERROR(store.EnsureTable(table.table_name()));
  // A new version takes over the view's name at once: RocksDB views are
  // local projections, rebuilt from offset zero when their definition changes.
  FRESHET_RETURN_IF_ERROR(store.SetAlias(table.view_name, table.table_name()));
  return std::unique_ptr<RocksDbViewStore>(new RocksDbViewStore(store, topic, table));
}

Result<std::map<int32_t, int64_t>> RocksDbViewStore::LoadOffsets() {
  return store_.LoadOffsets(table_.table_name(), topic_);
}

Status RocksDbViewStore::Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
                               std::vector<RowChange>* changes) {
  std::vector<KvWrite> writes;
  writes.reserve(rows.size());
  const std::string table = table_.table_name();
  for (const RowWrite& row : rows) {
    KvWrite w;
    w.key = EncodeKey(row.key);
    if (!row.deleted) {
      nlohmann::json value = nlohmann::json::object();
      bool merges = false;
      for (size_t i = 0; i < table_.value_columns.size() && i < row.values.size(); ++i) {
        value[table_.value_columns[i].name] = TypedColumn(row.values[i], table_.value_columns[i].sql_type);
        merges |= table_.value_columns[i].merge != Merge::kReplace;
      }
      if (merges) {
        auto stored = store_.Get(table, w.key);
        if (!stored.ok()) return stored.status();
        if (*stored) {
          nlohmann::json old = nlohmann::json::parse(**stored, nullptr, false);
          for (const auto& c : table_.value_columns)
            value[c.name] = Combine(c, old.is_object() ? old.value(c.name, nlohmann::json()) : nlohmann::json(), value[c.name]);
        }
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
  auto scanned = store_.Scan(table_.table_name(), encoded_prefix, limit);
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
