// What the text of a value looks like, for the column types a string can
// fill (date, timestamptz, numeric, uuid). One definition for what a view
// accepts and what `freshet inspect` guesses, so that a guess always fits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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

// Values in the encodings that Debezium's and schema-registry formats use,
// as the text a column of that type takes.

// `value` units of 1/`units_per_second` s since the epoch as a timestamp
// ("2024-05-01 12:00:00.123+00"), or nullopt outside years 1-9999.
std::optional<std::string> TimestampOf(int64_t value, int64_t units_per_second);
// The same appended to *out, without "+00" unless `zoned`; false (and *out
// unchanged) outside years 1-9999.
bool AppendTimestampText(int64_t value, int64_t units_per_second, bool zoned, std::string* out);
// Days since the epoch as a date (YYYY-MM-DD), or nullopt outside years 1-9999.
std::optional<std::string> DateOfDays(int64_t days);
// A decimal: the unscaled value as a big-endian two's-complement integer
// of any length (Connect Decimal, Avro decimal), and the scale.
std::string DecimalText(std::string_view bytes, int scale);
// The same, appended to *out.
void AppendDecimalText(std::string_view bytes, int scale, std::string* out);

}  // namespace freshet
