// What the text of a value looks like, for the column types a string can
// fill (date, timestamptz, numeric, uuid). One definition for what a view
// accepts and what `freshet inspect` guesses, so that a guess always fits.
#pragma once

#include <string_view>

namespace freshet {

// YYYY-MM-DD.
bool IsDateText(std::string_view s);
// Starts with YYYY-MM-DD, as dates and timestamps do.
bool StartsWithDateText(std::string_view s);
// YYYY-MM-DD, then 'T' or ' ' and the hour: an ISO timestamp.
bool IsTimestampText(std::string_view s);
// A decimal number: optional sign, digits with an optional point, an
// optional exponent ("-12.50", "1e3").
bool IsDecimalText(std::string_view s);
// 8-4-4-4-12 hex digits, as Postgres prints a uuid.
bool IsUuidText(std::string_view s);

}  // namespace freshet
