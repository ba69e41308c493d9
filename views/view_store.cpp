#include "views/view_store.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "core/json_text.h"
#include "sinks/postgres_sink.h"

namespace freshet {

namespace {

bool IsIntegerColumn(const std::string& sql_type) { return sql_type == "bigint" || sql_type == "integer"; }

// The whole text as an int64 (no sign but '-', no spaces).
bool ParseInteger(const std::string& text, int64_t* value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

// The whole text as a finite double: NaN and infinities have no JSON form,
// so they stay text rather than lose the value.
bool ParseFiniteDouble(const std::string& text, double* value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(*value);
}

}  // namespace

nlohmann::json TypedColumn(const std::optional<std::string>& text, const std::string& sql_type) {
  if (!text) return nullptr;
  int64_t integer = 0;
  double number = 0;
  if (IsIntegerColumn(sql_type))
    return ParseInteger(*text, &integer) ? nlohmann::json(integer) : nlohmann::json(*text);
  if (sql_type == "double precision")
    return ParseFiniteDouble(*text, &number) ? nlohmann::json(number) : nlohmann::json(*text);
  if (sql_type == "boolean") return *text == "true" || *text == "t";
  if (sql_type == "jsonb") {
    nlohmann::json parsed = nlohmann::json::parse(*text, nullptr, false);
    return parsed.is_discarded() ? nlohmann::json(*text) : parsed;
  }
  return *text;
}

void AppendTypedColumn(std::string* out, const std::optional<std::string>& text,
                       const std::string& sql_type) {
  if (!text) {
    out->append("null");
    return;
  }
  char buf[32];
  int64_t integer = 0;
  double number = 0;
  if (IsIntegerColumn(sql_type) && ParseInteger(*text, &integer)) {
    out->append(buf, std::to_chars(buf, buf + sizeof(buf), integer).ptr);
  } else if (sql_type == "double precision" && ParseFiniteDouble(*text, &number)) {
    std::string_view shortest(buf, std::to_chars(buf, buf + sizeof(buf), number).ptr - buf);
    out->append(shortest);
    // As nlohmann writes a double: 3.0, not 3 (which would read back as an integer).
    if (shortest.find_first_of(".e") == std::string_view::npos) out->append(".0");
  } else if (sql_type == "boolean") {
    out->append(*text == "true" || *text == "t" ? "true" : "false");
  } else if (sql_type == "jsonb" && nlohmann::json::accept(*text)) {
    out->append(*text);
  } else {
    AppendJsonString(*text, out);
  }
}

RowChange ToRowChange(const TableSpec& table, const RowWrite& full_row) {
  RowChange change;
  change.key = full_row.key;
  change.partition = full_row.partition;
  change.offset = full_row.offset;
  if (full_row.deleted) return change;  // row stays null
  change.row = nlohmann::json::object();
  for (size_t i = 0; i < table.key_columns.size() && i < full_row.key.size(); ++i)
    change.row[table.key_columns[i].name] = TypedColumn(full_row.key[i], table.key_columns[i].sql_type);
  for (size_t i = 0; i < table.value_columns.size() && i < full_row.values.size(); ++i)
    change.row[table.value_columns[i].name] =
        TypedColumn(full_row.values[i], table.value_columns[i].sql_type);
  return change;
}

std::string EncodeKey(const std::vector<std::string>& parts) {
  std::string key;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) key += '\x1f';
    key += parts[i];
  }
  return key;
}

std::vector<std::string> DecodeKey(std::string_view encoded) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t sep = encoded.find('\x1f', start);
    parts.emplace_back(
        encoded.substr(start, sep == std::string_view::npos ? std::string_view::npos : sep - start));
    if (sep == std::string_view::npos) break;
    start = sep + 1;
  }
  return parts;
}

PostgresViewStore::PostgresViewStore(std::unique_ptr<PostgresSink> sink, TableSpec table)
    : sink_(std::move(sink)), table_(std::move(table)) {}
PostgresViewStore::~PostgresViewStore() = default;
std::string PostgresViewStore::table_name() const { return sink_->table().table_name(); }
Result<std::map<int32_t, int64_t>> PostgresViewStore::LoadOffsets() { return sink_->LoadOffsets(); }
Result<std::map<int32_t, int64_t>> PostgresViewStore::LiveOffsets() { return sink_->LoadLiveOffsets(); }
bool PostgresViewStore::building() const { return sink_->building(); }
Status PostgresViewStore::SwapIn() { return sink_->SwapIn(); }
Status PostgresViewStore::StillCurrent() { return sink_->StillCurrent(); }
Result<std::string> PostgresViewStore::RebuildProgress() { return sink_->RebuildProgress(); }

Status PostgresViewStore::Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
                                std::vector<RowChange>* changes) {
  if (!changes) return sink_->Write(rows, offsets);
  std::vector<RowWrite> full_rows;
  FRESHET_RETURN_IF_ERROR(sink_->Write(rows, offsets, &full_rows));
  changes->reserve(changes->size() + full_rows.size());
  for (const RowWrite& row : full_rows) changes->push_back(ToRowChange(table_, row));
  return Status::Ok();
}

Result<std::vector<RowChange>> PostgresViewStore::ReadRows(const std::string& encoded_prefix, size_t limit) {
  if (sink_->building()) {
    // Readers see the live version until the swap; feed snapshots too.
    auto live = sink_->ReadLiveRows(encoded_prefix.empty() ? limit : std::numeric_limits<int32_t>::max());
    if (!live.ok()) return live.status();
    std::vector<RowChange> out;
    for (nlohmann::json& row : *live) {
      if (out.size() >= limit) break;
      RowChange change;
      bool keyed = row.is_object();
      for (const auto& c : table_.key_columns) {
        auto it = keyed ? row.find(c.name) : row.end();
        if (!keyed || it == row.end() || it->is_null()) {
          keyed = false;
          break;
        }
        change.key.push_back(it->is_string() ? it->get<std::string>() : it->dump());
      }
      if (!keyed) continue;  // the live version lacks one of our key columns
      if (!encoded_prefix.empty() && EncodeKey(change.key).rfind(encoded_prefix, 0) != 0) continue;
      change.row = std::move(row);
      out.push_back(std::move(change));
    }
    std::sort(out.begin(), out.end(), [](const RowChange& a, const RowChange& b) { return a.key < b.key; });
    return out;
  }
  // Feeds filter on leading key columns; Postgres reads the table in key
  // order and the filter is applied here (snapshots are bounded by `limit`).
  auto rows = sink_->ReadRows(encoded_prefix.empty() ? limit : std::numeric_limits<int32_t>::max());
  if (!rows.ok()) return rows.status();
  std::vector<RowChange> out;
  for (const RowWrite& row : *rows) {
    if (out.size() >= limit) break;
    if (!encoded_prefix.empty() && EncodeKey(row.key).rfind(encoded_prefix, 0) != 0) continue;
    out.push_back(ToRowChange(table_, row));
  }
  return out;
}

nlohmann::json RowWithKey(const TableSpec& table, const std::vector<std::string>& key,
                          nlohmann::json values) {
  nlohmann::json row = nlohmann::json::object();
  for (size_t i = 0; i < table.key_columns.size() && i < key.size(); ++i)
    row[table.key_columns[i].name] = TypedColumn(key[i], table.key_columns[i].sql_type);
  if (values.is_object())
    for (auto& [column, v] : values.items()) row[column] = std::move(v);
  return row;
}

}  // namespace freshet
