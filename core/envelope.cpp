#include "core/envelope.h"

#include <chrono>

#include "core/json_text.h"

namespace freshet {

std::string EncodeEventValue(const Event& event) {
  // Written straight into one string: a temporary json object would deep-copy
  // `data`, and dump() per field costs more than the writing (profile of
  // the in-process writer).
  std::string out;
  out.reserve(64 + event.type.size() + event.id.size());
  // A type that is not UTF-8 throws here, as dump() would.
  if (!IsValidUtf8(event.type)) AppendJsonText(event.type, &out);
  AppendEventValueHead(event.type, event.id, event.ts_ms, &out);
  AppendJson(event.data, &out);
  out.push_back('}');
  return out;
}

void AppendEventValueHead(std::string_view type, const std::string& id, int64_t ts_ms, std::string* out) {
  out->append("{\"type\":");
  AppendJsonString(type, out);
  out->append(",\"id\":");
  AppendJsonText(id, out);
  out->append(",\"ts\":");
  AppendInteger(ts_ms, out);
  out->append(",\"data\":");
}

Result<Event> DecodeEventValue(std::string_view value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("event value is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("event value is not a JSON object");
  Event e;
  auto type = j.find("type");
  if (type == j.end() || !type->is_string())
    return Status::InvalidArgument("event.type: missing or not a string");
  e.type = type->get<std::string>();
  auto id = j.find("id");
  if (id != j.end()) {
    if (!id->is_string()) return Status::InvalidArgument("event.id: not a string");
    e.id = id->get<std::string>();
  }
  auto ts = j.find("ts");
  if (ts != j.end()) {
    if (!ts->is_number_integer()) return Status::InvalidArgument("event.ts: not an integer");
    e.ts_ms = ts->get<int64_t>();
  }
  auto data = j.find("data");
  if (data == j.end() || !data->is_object())
    return Status::InvalidArgument("event.data: missing or not an object");
  e.data = std::move(*data);
  return e;
}

int32_t PartitionForKey(std::string_view key, int32_t partition_count) {
  // Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), seed 0x9747b28c.
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  size_t length = key.size();
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(length);
  size_t i = 0;
  for (; i + 4 <= length; i += 4) {
    uint32_t k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (uint32_t(data[i + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
    case 3:
      h ^= uint32_t(data[i + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= uint32_t(data[i + 1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= data[i];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>((h & 0x7fffffff) % static_cast<uint32_t>(partition_count));
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace freshet
