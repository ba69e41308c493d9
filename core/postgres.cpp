#include "core/postgres.h"

#include <regex>

namespace freshet {

std::string RedactUrl(const std::string& url) {
  static const std::regex password(R"(://([^:/@]+):([^@]*)@)");
  return std::regex_replace(url, password, "://$1:***@");
}

Result<std::unique_ptr<pqxx::connection>> ConnectPostgres(const std::string& url) {
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    return Status::Unavailable("postgres.url " + RedactUrl(url) + ": " + what);
  }
}

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace freshet
