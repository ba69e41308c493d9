#include "live/sql_query.h"

#include <cctype>

namespace freshet {

namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// Splits SQL into words (identifiers, keywords; quoted identifiers without
// their quotes) and the statement separators outside literals and comments.
struct Scan {
  std::vector<std::string> words;  // lower case unless quoted
  int semicolons = 0;
  std::string error;
};

Scan ScanSql(const std::string& sql) {
  Scan out;
  size_t i = 0, n = sql.size();
  while (i < n) {
    char c = sql[i];
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string::npos) return out.error = "unterminated /* comment", out;
      i = end + 2;
    } else if (c == '\'') {
      for (++i; i < n; ++i) {
        if (sql[i] == '\'' && i + 1 < n && sql[i + 1] == '\'')
          ++i;
        else if (sql[i] == '\'')
          break;
      }
      if (i >= n) return out.error = "unterminated string literal", out;
      ++i;
    } else if (c == '"') {
      size_t end = sql.find('"', i + 1);
      if (end == std::string::npos) return out.error = "unterminated quoted identifier", out;
      out.words.push_back(sql.substr(i + 1, end - i - 1));
      i = end + 1;
    } else if (c == '$' && (i == 0 || !IdentChar(sql[i - 1]))) {
      // Dollar quoting: $tag$ ... $tag$
      size_t close = sql.find('$', i + 1);
      std::string tag = close == std::string::npos ? "" : sql.substr(i, close - i + 1);
      bool is_tag = !tag.empty();
      for (size_t k = 1; is_tag && k + 1 < tag.size(); ++k) is_tag = IdentChar(tag[k]) && tag[k] != '$';
      if (!is_tag) {
        ++i;
        continue;
      }
      size_t end = sql.find(tag, close + 1);
      if (end == std::string::npos) return out.error = "unterminated dollar-quoted string", out;
      i = end + tag.size();
    } else if (c == ';') {
      ++out.semicolons;
      ++i;
    } else if (IdentChar(c)) {
      size_t start = i;
      while (i < n && IdentChar(sql[i])) ++i;
      out.words.push_back(Lower(sql.substr(start, i - start)));
    } else {
      ++i;
    }
  }
  return out;
}

}  // namespace

Result<LiveQueryRequest> ParseLiveQueryRequest(const std::string& message) {
  nlohmann::json j = nlohmann::json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument(
        "expected a JSON object {\"sql\": \"SELECT ...\", \"key\": [\"column\", ...]}");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "sql" && it.key() != "key" && it.key() != "min_interval_ms")
      return Status::InvalidArgument(it.key() + ": unknown field (known: sql, key, min_interval_ms)");
  LiveQueryRequest r;
  if (!j.contains("sql") || !j["sql"].is_string()) return Status::InvalidArgument("sql: required, a string");
  r.sql = j["sql"].get<std::string>();
  if (!j.contains("key") || !j["key"].is_array() || j["key"].empty())
    return Status::InvalidArgument("key: required, a non-empty array of result column names");
  for (const auto& k : j["key"]) {
    if (!k.is_string() || k.get<std::string>().empty())
      return Status::InvalidArgument("key: every entry must be a column name (a non-empty string)");
    r.key.push_back(k.get<std::string>());
  }
  if (j.contains("min_interval_ms")) {
    if (!j["min_interval_ms"].is_number_integer() || j["min_interval_ms"].get<int64_t>() < 10 ||
        j["min_interval_ms"].get<int64_t>() > 3600000)
      return Status::InvalidArgument("min_interval_ms: expected an integer from 10 to 3600000");
    r.min_interval_ms = j["min_interval_ms"].get<int>();
  }

  // One statement: a trailing ';' is tolerated, any other is refused.
  std::string sql = r.sql;
  while (!sql.empty() && std::isspace(static_cast<unsigned char>(sql.back()))) sql.pop_back();
  if (!sql.empty() && sql.back() == ';') sql.pop_back();
  Scan scan = ScanSql(sql);
  if (!scan.error.empty()) return Status::InvalidArgument("sql: " + scan.error);
  if (scan.semicolons > 0)
    return Status::InvalidArgument("sql: only a single statement is allowed (found ';')");
  if (scan.words.empty()) return Status::InvalidArgument("sql: empty query");
  if (scan.words[0] != "select" && scan.words[0] != "with")
    return Status::InvalidArgument("sql: only a single SELECT is allowed, not " + scan.words[0]);
  for (const char* w : {"insert", "update", "delete", "merge", "truncate", "copy", "into"}) {
    for (const auto& word : scan.words)
      if (word == w)
        return Status::InvalidArgument(std::string("sql: only a read-only SELECT is allowed (found ") + w +
                                       ")");
  }
  r.sql = sql;
  return r;
}

std::set<std::string> ReferencedViews(const std::string& sql, const std::set<std::string>& known_views) {
  std::set<std::string> out;
  for (const auto& word : ScanSql(sql).words)
    if (known_views.count(word)) out.insert(word);
  return out;
}

ResultDiff DiffResults(const KeyedRows& before, const KeyedRows& after, const std::vector<std::string>& key) {
  ResultDiff d;
  for (const auto& [k, row] : after) {
    auto it = before.find(k);
    if (it == before.end())
      d.added.push_back(row);
    else if (it->second != row)
      d.changed.push_back(row);
  }
  for (const auto& [k, row] : before) {
    if (after.count(k)) continue;
    nlohmann::json gone = nlohmann::json::object();
    for (const auto& column : key) gone[column] = row.value(column, nlohmann::json());
    d.removed.push_back(gone);
  }
  return d;
}

}  // namespace freshet
