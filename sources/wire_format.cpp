#include "sources/wire_format.h"

#include <cstdio>
#include <string>

namespace freshet {
namespace {

std::string Hex(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", b);
  return buf;
}

// One zigzag varint (at most 5 bytes for an int32) at bytes[*pos].
bool ReadZigzag(std::string_view bytes, size_t* pos, int32_t* out) {
  uint32_t raw = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*pos >= bytes.size()) return false;
    uint8_t b = static_cast<uint8_t>(bytes[(*pos)++]);
    raw |= static_cast<uint32_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = static_cast<int32_t>((raw >> 1) ^ (~(raw & 1) + 1));
      return true;
    }
  }
  return false;
}

void WriteZigzag(int32_t v, std::string* out) {
  uint32_t raw = (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31);
  while (raw >= 0x80) {
    out->push_back(static_cast<char>((raw & 0x7f) | 0x80));
    raw >>= 7;
  }
  out->push_back(static_cast<char>(raw));
}

}  // namespace

Status ParseWireFrame(std::string_view bytes, bool protobuf, WireFrame* out) {
  out->message_indexes.clear();
  if (bytes.empty())
    return Status::InvalidArgument("empty value: no Confluent wire-format header (magic byte 0x00)");
  uint8_t magic = static_cast<uint8_t>(bytes[0]);
  if (magic != 0x00) {
    std::string what = "wrong magic byte " + Hex(magic) + ": not the Confluent wire format (magic byte 0x00)";
    if (magic == 0x01)
      what += "; 0x01 is the newer GUID framing, which freshet does not read";
    else if (magic == '{' || magic == '[' || magic == '"')
      what += "; it looks like plain JSON (use format json)";
    return Status::InvalidArgument(what);
  }
  if (bytes.size() < 5)
    return Status::InvalidArgument(
        "truncated: " + std::to_string(bytes.size()) +
        " bytes, the Confluent wire-format header needs 5 (magic byte and schema id)");
  uint32_t id = 0;
  for (int i = 1; i <= 4; ++i) id = (id << 8) | static_cast<uint8_t>(bytes[i]);
  out->schema_id = static_cast<int32_t>(id);
  size_t pos = 5;
  if (protobuf) {
    int32_t count = 0;
    if (!ReadZigzag(bytes, &pos, &count))
      return Status::InvalidArgument("truncated: the Protobuf message-index array is cut off");
    if (count < 0 || static_cast<size_t>(count) > bytes.size() - pos)
      return Status::InvalidArgument("truncated or bad: the Protobuf message-index array announces " +
                                     std::to_string(count) + " indexes");
    if (count == 0) {
      out->message_indexes.push_back(0);  // [0], written as the single byte 0x00
    } else {
      for (int32_t i = 0; i < count; ++i) {
        int32_t index = 0;
        if (!ReadZigzag(bytes, &pos, &index))
          return Status::InvalidArgument("truncated: the Protobuf message-index array is cut off");
        if (index < 0) return Status::InvalidArgument("bad Protobuf message index " + std::to_string(index));
        out->message_indexes.push_back(index);
      }
    }
  }
  out->payload = bytes.substr(pos);
  return Status::Ok();
}

std::string WireHeader(int32_t schema_id, const std::vector<int32_t>* message_indexes) {
  std::string out(1, '\0');
  uint32_t id = static_cast<uint32_t>(schema_id);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((id >> shift) & 0xff));
  if (message_indexes) {
    if (message_indexes->size() == 1 && (*message_indexes)[0] == 0) {
      out.push_back('\0');
    } else {
      WriteZigzag(static_cast<int32_t>(message_indexes->size()), &out);
      for (int32_t index : *message_indexes) WriteZigzag(index, &out);
    }
  }
  return out;
}

}  // namespace freshet
