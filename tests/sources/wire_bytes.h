// Records of the registry formats written by hand, as their specs say: for
// the tests and fuzz targets of sources/ (no serializer of ours to trust).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace freshet::test_bytes {

// Avro's binary encoding: a long as a zigzag varint; bytes and strings as
// their length, then themselves.
inline void Long(int64_t v, std::string* out) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    out->push_back(static_cast<char>((z & 0x7f) | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<char>(z));
}
inline void Bytes(std::string_view s, std::string* out) {
  Long(static_cast<int64_t>(s.size()), out);
  out->append(s);
}

// Protobuf's plain (not zigzag) varint.
inline void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A Protobuf schema with every kind of field ProtobufJson's direct wire
// reader handles (no maps): kinds.All.
inline constexpr const char* kEveryKindProto = R"(syntax = "proto3";
package kinds;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message All {
  enum Colour { RED = 0; GREEN = 1; BLUE = 5; }
  message Inner { string s = 1; sint32 z = 2; repeated int32 r = 3; Inner next = 4; }
  int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4; sint32 s32 = 5; sint64 s64 = 6;
  fixed32 f32 = 7; fixed64 f64 = 8; sfixed32 sf32 = 9; sfixed64 sf64 = 10; float fl = 11; double db = 12;
  bool b = 13; string str = 14; bytes by = 15; Colour colour = 16; Inner inner = 17;
  repeated int64 ri64 = 18; repeated double rdb = 19; repeated string rstr = 20; repeated Inner rinner = 21;
  repeated Colour rcolour = 22; optional int32 oi32 = 23; optional string ostr = 24;
  oneof choice { int32 c_int = 25; string c_str = 26; Inner c_inner = 27; }
  google.protobuf.Timestamp at = 28; google.protobuf.StringValue sv = 29; google.protobuf.Int32Value iv = 30;
  repeated sint64 rs64 = 31; repeated fixed32 rf32 = 32; repeated bool rb = 33;
}
)";

}  // namespace freshet::test_bytes
