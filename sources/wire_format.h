// The Confluent schema-registry wire format: how Confluent-compatible
// serializers (Avro, Protobuf, JSON Schema) frame each key and value.
//
//   byte 0     magic 0x00
//   bytes 1-4  the schema id, a big-endian int32
//   Protobuf:  the message-index array (zigzag varints: a count, then that
//              many indexes; the common [0] is the single byte 0x00)
//   then       the payload: an Avro binary datum, a Protobuf message, or
//              UTF-8 JSON
//
// Parsing never allocates beyond the index vector and never reads past the
// bytes given; every refusal names what is wrong, so that a dead letter's
// reason says why.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace freshet {

struct WireFrame {
  int32_t schema_id = 0;
  // Protobuf: the path of the message type in the schema's file (top-level
  // message, then nested ones); [0] is the first top-level message.
  std::vector<int32_t> message_indexes;
  std::string_view payload;  // into the bytes given
};

// `protobuf`: the frame carries the message-index array. kInvalidArgument
// for a wrong magic byte, a truncated header or index array.
Status ParseWireFrame(std::string_view bytes, bool protobuf, WireFrame* out);

// The header for `schema_id` (and, for Protobuf, `message_indexes`), as a
// Confluent serializer writes it: for tests, benchmarks and tools.
std::string WireHeader(int32_t schema_id, const std::vector<int32_t>* message_indexes);

}  // namespace freshet
