#include "views/partition_rows.h"

#include <algorithm>

namespace freshet {

std::string ShareKey(std::string_view encoded_key, int32_t partition) {
  std::string key;
  key.reserve(encoded_key.size() + 5);
  key.append(encoded_key);
  key.push_back('\0');
  uint32_t p = static_cast<uint32_t>(partition < 0 ? 0 : partition);
  for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>((p >> shift) & 0xff));
  return key;
}

bool SplitShareKey(std::string_view stored, std::string_view* encoded_key, int32_t* partition) {
  if (stored.size() < 5 || stored[stored.size() - 5] != '\0') return false;
  uint32_t p = 0;
  for (size_t i = stored.size() - 4; i < stored.size(); ++i)
    p = (p << 8) | static_cast<unsigned char>(stored[i]);
  *encoded_key = stored.substr(0, stored.size() - 5);
  *partition = static_cast<int32_t>(p);
  return true;
}

std::string SharesOf(std::string_view encoded_key) {
  std::string prefix(encoded_key);
  prefix.push_back('\0');
  return prefix;
}

nlohmann::json CombineColumn(const ColumnSpec& c, const nlohmann::json& stored,
                             const nlohmann::json& written) {
  if (c.merge == Merge::kReplace || stored.is_null()) return written;
  if (written.is_null()) return stored;
  switch (c.merge) {
    case Merge::kAdd:
      if (stored.is_number_integer() && written.is_number_integer())
        return stored.get<int64_t>() + written.get<int64_t>();
      if (stored.is_number() && written.is_number()) return stored.get<double>() + written.get<double>();
      return written;
    case Merge::kMin:
      return written < stored ? written : stored;
    case Merge::kMax:
      return written > stored ? written : stored;
    case Merge::kReplace:
      break;
  }
  return written;
}

void AddShare(const TableSpec& table, const nlohmann::json& share, nlohmann::json* whole) {
  if (!share.is_object()) return;
  if (!whole->is_object()) {
    *whole = share;
    return;
  }
  for (const auto& c : table.value_columns) {
    auto mine = whole->find(c.name);
    auto theirs = share.find(c.name);
    nlohmann::json stored = mine == whole->end() ? nlohmann::json() : *mine;
    nlohmann::json written = theirs == share.end() ? nlohmann::json() : *theirs;
    (*whole)[c.name] = CombineColumn(c, stored, written);
  }
}

std::vector<std::pair<std::string, nlohmann::json>> MergeShares(const TableSpec& table,
                                                                std::vector<RowShare> shares, size_t limit) {
  std::sort(shares.begin(), shares.end(), [](const RowShare& a, const RowShare& b) {
    return a.key != b.key ? a.key < b.key : a.partition < b.partition;
  });
  std::vector<std::pair<std::string, nlohmann::json>> rows;
  for (RowShare& share : shares) {
    if (rows.empty() || rows.back().first != share.key) {
      if (rows.size() == limit) break;
      rows.emplace_back(std::move(share.key), std::move(share.value));
      continue;
    }
    AddShare(table, share.value, &rows.back().second);
  }
  return rows;
}

}  // namespace freshet
