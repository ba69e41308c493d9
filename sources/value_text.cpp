#include "sources/value_text.h"

#include <cctype>
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
  return IsDigits(s, 0, 4) && s.size() >= 10 && s[4] == '-' && IsDigits(s, 5, 2) && s[7] == '-' && IsDigits(s, 8, 2);
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


// `value` units of 1/`units_per_second` s since the epoch as a timestamp, or
// nullopt outside years 1-9999.
std::optional<std::string> TimestampOf(int64_t value, int64_t units_per_second) {
  int64_t seconds = value / units_per_second, fraction = value % units_per_second;
  if (fraction < 0) fraction += units_per_second, --seconds;
  if (seconds < kMinSeconds || seconds > kMaxSeconds) return std::nullopt;
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  if (units_per_second > 1) {
    int width = units_per_second == 1000 ? 3 : units_per_second == 1000000 ? 6 : 9;
    std::snprintf(buf + n, sizeof(buf) - n, ".%0*lld", width, static_cast<long long>(fraction));
    n = std::strlen(buf);
  }
  std::snprintf(buf + n, sizeof(buf) - n, "+00");
  return std::string(buf);
}

// Days since the epoch as a date, or nullopt outside years 1-9999.
std::optional<std::string> DateOfDays(int64_t days) {
  if (days < kMinSeconds / 86400 || days > kMaxSeconds / 86400) return std::nullopt;
  std::time_t t = static_cast<std::time_t>(days * 86400);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return std::string(buf);
}

// A Connect Decimal: the unscaled value as a big-endian two's-complement
// integer of any length, and the scale from the schema.
std::string DecimalText(std::string_view bytes, int scale) {
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
  std::string text(digits.rbegin(), digits.rend());
  if (scale > 0) {
    if (text.size() <= static_cast<size_t>(scale)) text.insert(0, static_cast<size_t>(scale) + 1 - text.size(), '0');
    text.insert(text.size() - static_cast<size_t>(scale), ".");
  } else if (scale < 0 && text != "0") {
    text.append(static_cast<size_t>(-scale), '0');
  }
  return (negative && text.find_first_not_of("0.") != std::string::npos ? "-" : "") + text;
}

}  // namespace freshet
