#include "core/json_text.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace freshet {

namespace {

// The letter after the backslash for the characters JSON escapes short
// (nlohmann's set, so that AppendJson writes what dump() would); 0 for
// the other control characters, written \u00XX.
char ShortEscape(unsigned char c) {
  switch (c) {
    case '"':
      return '"';
    case '\\':
      return '\\';
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\t':
      return 't';
    case '\b':
      return 'b';
    case '\f':
      return 'f';
    default:
      return 0;
  }
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  // Runs that need no escape are appended whole: a decoder writes every
  // string of every record through here.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    if (char letter = ShortEscape(c)) {
      const char escaped[] = {'\\', letter};
      out->append(escaped, sizeof(escaped));
    } else {
      const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(escaped, sizeof(escaped));
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

bool IsValidUtf8(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return simdjson::validate_utf8(s.data(), s.size());
  return true;
}

bool AppendJsonStringIfUtf8(std::string_view s, std::string* out) {
  if (!IsValidUtf8(s)) return false;
  AppendJsonString(s, out);
  return true;
}

void AppendBase64String(std::string_view bytes, std::string* out) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out->push_back('"');
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                 static_cast<uint8_t>(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out->push_back(kAlphabet[(n >> shift) & 63]);
  }
  if (size_t left = bytes.size() - i) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (left == 2) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out->push_back(kAlphabet[(n >> 18) & 63]);
    out->push_back(kAlphabet[(n >> 12) & 63]);
    out->push_back(left == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out->push_back('=');
  }
  out->push_back('"');
}

namespace {
template <class T>
void AppendNumber(T v, std::string* out) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
  // A float written without point or exponent ("18446744073709551616")
  // would read back as an integer, and one too large for JSON parsers.
  if constexpr (std::is_floating_point_v<T>) {
    if (std::string_view(buf, static_cast<size_t>(r.ptr - buf)).find_first_of(".e") == std::string_view::npos)
      out->append(".0");
  }
}
}  // namespace

void AppendDouble(double v, std::string* out) {
  if (std::isnan(v))
    out->append("\"NaN\"");
  else if (std::isinf(v))
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  else
    AppendNumber(v, out);
}

void AppendFloat(float v, std::string* out) {
  if (std::isnan(v) || std::isinf(v))
    AppendDouble(v, out);
  else
    AppendNumber(v, out);
}

void AppendInteger(int64_t v, std::string* out) { AppendNumber(v, out); }
void AppendUnsigned(uint64_t v, std::string* out) { AppendNumber(v, out); }

void AppendJsonText(const std::string& text, std::string* out) {
  if (!AppendJsonStringIfUtf8(text, out))
    out->append(nlohmann::json(text).dump());  // throws, as dump() would
}

void AppendJson(const nlohmann::json& value, std::string* out) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonText(key, out);
        out->push_back(':');
        AppendJson(member, out);
      }
      out->push_back('}');
      return;
    }
    case nlohmann::json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const nlohmann::json& element : value.get_ref<const nlohmann::json::array_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJson(element, out);
      }
      out->push_back(']');
      return;
    }
    case nlohmann::json::value_t::string:
      AppendJsonText(value.get_ref<const std::string&>(), out);
      return;
    case nlohmann::json::value_t::number_integer:
      AppendInteger(value.get<int64_t>(), out);
      return;
    case nlohmann::json::value_t::number_unsigned:
      AppendUnsigned(value.get<uint64_t>(), out);
      return;
    case nlohmann::json::value_t::boolean:
      out->append(value.get<bool>() ? "true" : "false");
      return;
    case nlohmann::json::value_t::null:
      out->append("null");
      return;
    default:
      // Floats (nlohmann's own shortest form, NaN as null) and binary: dump's text.
      out->append(value.dump());
      return;
  }
}

}  // namespace freshet
