// Writing JSON text by hand: for the decoders that turn a binary record
// (Avro, Protobuf) into the JSON a view reads, and for the writer's events.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace freshet {

// `s` as a JSON string literal (quotes, escapes). `s` must be valid UTF-8.
void AppendJsonString(std::string_view s, std::string* out);
// The same for bytes that may not be UTF-8: false (and *out unchanged)
// when they are not. One pass for the common ASCII text.
bool AppendJsonStringIfUtf8(std::string_view s, std::string* out);
// Whether `s` is valid UTF-8; quick for ASCII, as most text is.
bool IsValidUtf8(std::string_view s);
// `bytes` as a JSON string of their base64 (as Debezium and Protobuf's JSON
// mapping write bytes).
void AppendBase64String(std::string_view bytes, std::string* out);
// A number in its shortest exact form; NaN and infinities, which JSON has
// not, as the strings "NaN", "Infinity", "-Infinity".
void AppendDouble(double v, std::string* out);
void AppendFloat(float v, std::string* out);
void AppendInteger(int64_t v, std::string* out);
void AppendUnsigned(uint64_t v, std::string* out);
// `text` as nlohmann's dump() writes a string: like AppendJsonString, but
// throws (as dump() does) when it is not UTF-8.
void AppendJsonText(const std::string& text, std::string* out);
// The same text as `value.dump()`, written straight into `out`: dump()
// allocates an output adapter and consults the locale on every call, and
// escapes byte by byte. Like dump(), throws on a string that is not UTF-8.
void AppendJson(const nlohmann::json& value, std::string* out);

}  // namespace freshet
