#include "sources/value_text.h"

#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace freshet {
namespace {

bool IsDigits(std::string_view s, size_t from, size_t count) {
  if (s.size() < from + count) return false;
  for (size_t i = from; i < from + count; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

// Years 1 to 9999, which every store and client can hold; seconds since the epoch.
constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01 00:00:00
constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31 23:59:59

}  // namespace

bool StartsWithDateText(std::string_view s) {
  return IsDigits(s, 0, 4) && s.size() >= 10 && s[4] == '-' && IsDigits(s, 5, 2) && s[7] == '-' &&
         IsDigits(s, 8, 2);
}

bool IsDecimalText(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (i >= s.size()) return false;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  return i == s.size();
}

bool IsUuidText(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

bool IsDateText(std::string_view s) { return s.size() == 10 && StartsWithDateText(s); }

bool IsTimestampText(std::string_view s) {
  return s.size() > 10 && StartsWithDateText(s) && (s[10] == 'T' || s[10] == ' ') && IsDigits(s, 11, 2);
}

namespace {

// The proleptic Gregorian date of `days` since 1970-01-01 (Howard
// Hinnant's civil_from_days): exact for every date, and without gmtime_r,
// strftime and snprintf, which cost a decoder more than the rest of a
// record did.
void CivilFromDays(int64_t days, int64_t* year, int* month, int* day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2 ? 1 : 0);
}

// `value` as exactly `width` decimal digits, zero-padded.
void AppendDigits(int64_t value, int width, std::string* out) {
  char buf[20];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out->append(buf, static_cast<size_t>(width));
}

void AppendDate(int64_t days, std::string* out) {
  int64_t year = 0;
  int month = 0, day = 0;
  CivilFromDays(days, &year, &month, &day);
  AppendDigits(year, 4, out);
  out->push_back('-');
  AppendDigits(month, 2, out);
  out->push_back('-');
  AppendDigits(day, 2, out);
}

}  // namespace

// `value` units of 1/`units_per_second` s since the epoch as a timestamp, or
// nullopt outside years 1-9999.
std::optional<std::string> TimestampOf(int64_t value, int64_t units_per_second) {
  std::string text;
  if (!AppendTimestampText(value, units_per_second, true, &text)) return std::nullopt;
  return text;
}

bool AppendTimestampText(int64_t value, int64_t units_per_second, bool zoned, std::string* out) {
  int64_t seconds = value / units_per_second, fraction = value % units_per_second;
  if (fraction < 0) fraction += units_per_second, --seconds;
  if (seconds < kMinSeconds || seconds > kMaxSeconds) return false;
  int64_t days = seconds / 86400, of_day = seconds % 86400;
  if (of_day < 0) of_day += 86400, --days;
  AppendDate(days, out);
  out->push_back(' ');
  AppendDigits(of_day / 3600, 2, out);
  out->push_back(':');
  AppendDigits(of_day / 60 % 60, 2, out);
  out->push_back(':');
  AppendDigits(of_day % 60, 2, out);
  if (units_per_second > 1) {
    out->push_back('.');
    AppendDigits(fraction, units_per_second == 1000 ? 3 : units_per_second == 1000000 ? 6 : 9, out);
  }
  if (zoned) out->append("+00");
  return true;
}

// Days since the epoch as a date, or nullopt outside years 1-9999.
std::optional<std::string> DateOfDays(int64_t days) {
  if (days < kMinSeconds / 86400 || days > kMaxSeconds / 86400) return std::nullopt;
  std::string text;
  AppendDate(days, &text);
  return text;
}

// A Connect Decimal: the unscaled value as a big-endian two's-complement
// integer of any length, and the scale from the schema.
std::string DecimalText(std::string_view bytes, int scale) {
  std::string text;
  AppendDecimalText(bytes, scale, &text);
  return text;
}

namespace {

// The unscaled digits `digits` (no sign, no leading zeros but "0") with
// `scale` put in.
void AppendScaled(bool negative, std::string_view digits, int scale, std::string* out) {
  std::string text(digits);
  if (scale > 0) {
    if (text.size() <= static_cast<size_t>(scale))
      text.insert(0, static_cast<size_t>(scale) + 1 - text.size(), '0');
    text.insert(text.size() - static_cast<size_t>(scale), ".");
  } else if (scale < 0 && text != "0") {
    text.append(static_cast<size_t>(-scale), '0');
  }
  if (negative && text.find_first_not_of("0.") != std::string::npos) out->push_back('-');
  out->append(text);
}

}  // namespace

void AppendDecimalText(std::string_view bytes, int scale, std::string* out) {
  // Up to 8 bytes (the common case: precision up to 18) fit an int64.
  if (!bytes.empty() && bytes.size() <= 8) {
    uint64_t u = (static_cast<uint8_t>(bytes[0]) & 0x80) ? ~uint64_t{0} : 0;  // sign-extended
    for (char b : bytes) u = (u << 8) | static_cast<uint8_t>(b);
    auto v = static_cast<int64_t>(u);
    uint64_t magnitude = v < 0 ? uint64_t{0} - u : u;
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), magnitude);
    AppendScaled(v < 0, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), scale, out);
    return;
  }
  std::vector<uint8_t> magnitude(bytes.begin(), bytes.end());
  bool negative = !magnitude.empty() && (magnitude[0] & 0x80);
  if (negative) {  // two's complement: invert and add one
    for (auto& b : magnitude) b = static_cast<uint8_t>(~b);
    for (size_t i = magnitude.size(); i-- > 0;)
      if (++magnitude[i] != 0) break;
  }
  std::string digits;  // least significant first
  while (true) {
    bool zero = true;
    uint32_t remainder = 0;
    for (auto& b : magnitude) {
      uint32_t cur = (remainder << 8) | b;
      b = static_cast<uint8_t>(cur / 10);
      remainder = cur % 10;
      zero = zero && b == 0;
    }
    digits.push_back(static_cast<char>('0' + remainder));
    if (zero) break;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  AppendScaled(negative, std::string(digits.rbegin(), digits.rend()), scale, out);
}

}  // namespace freshet
