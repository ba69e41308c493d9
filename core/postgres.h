// Connecting to Postgres with libpqxx 6.4, errors turned into values.
#pragma once

#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "core/status.h"

namespace freshet {

// Opens a connection; the error names the URL (without password).
Result<std::unique_ptr<pqxx::connection>> ConnectPostgres(const std::string& url);

// `url` with any password replaced by "***", for messages and logs.
std::string RedactUrl(const std::string& url);

// Quotes an SQL identifier ("stock_levels" -> "\"stock_levels\"").
std::string QuoteIdent(const std::string& name);

}  // namespace freshet
