// The event envelope: the contract between the writer and every view.
//
// Kafka key   = the partition key (a store id in the inventory example).
// Kafka value = JSON {"type", "id", "ts", "data"}; `id` is the command's
//               idempotency key, `ts` milliseconds since the epoch.
// Headers     = "freshet.type" (same as value.type) and "freshet.schema",
//               so a view can skip an event without parsing its value.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace freshet {

inline constexpr const char* kTypeHeader = "freshet.type";
inline constexpr const char* kSchemaHeader = "freshet.schema";
inline constexpr const char* kSchemaVersion = "1";

struct Event {
  std::string type;
  std::string id;
  int64_t ts_ms = 0;
  nlohmann::json data = nlohmann::json::object();
  // Where a view read the event (not part of the encoded value); -1 otherwise.
  int32_t partition = -1;
  int64_t offset = -1;
};

std::string EncodeEventValue(const Event& event);
// The envelope up to its data, `{"type":...,"id":...,"ts":...,"data":`, for
// a caller that writes the data object (and the closing brace) itself.
// `type` must be UTF-8; an `id` that is not throws, as EncodeEventValue does.
void AppendEventValueHead(std::string_view type, const std::string& id, int64_t ts_ms, std::string* out);

// Fails with kInvalidArgument naming the missing or mistyped field.
Result<Event> DecodeEventValue(std::string_view value);

// The partition Kafka's Java client (and librdkafka's murmur2 partitioner)
// picks for `key`: murmur2(key) made positive, modulo the partition count.
int32_t PartitionForKey(std::string_view key, int32_t partition_count);

int64_t NowMillis();

}  // namespace freshet
