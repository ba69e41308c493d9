// Where a view reads its records and how they are laid out: the "source"
// object of a view definition. Without one a view reads the writer's topic
// (kafka.topic) in freshet's envelope {type, id, ts, data}.
//
//   "source": {"topic": "crm.public.customers", "format": "json", "envelope": "debezium"}
//
//  format   freshet (default) | json (any JSON value) | avro | protobuf |
//           json_sr: the Confluent schema-registry wire format (magic byte,
//           schema id, payload), each record read with its writer schema
//  key_format  avro | protobuf | json_sr: keys in the wire format too
//           (default: the key as text, or as JSON for $key/ptr)
//  schema_registry  {"url", "username", "password", "token",
//           "connect_timeout_ms", "request_timeout_ms"}; default: the url
//           from FRESHET_SCHEMA_REGISTRY_URL (and _USERNAME, _PASSWORD, _TOKEN)
//  envelope freshet (default for format freshet)
//           append   each record is an event (default for format json)
//           upsert   the Kafka key is the row's identity, the value the
//                    whole new row, a null value (tombstone) deletes it
//           debezium change events: op c/r/u upsert `after`, d deletes,
//                    the tombstone after a delete is skipped
//  type     append/upsert/debezium: where `$type` comes from:
//           "$header.NAME", a JSON pointer into the value, or a constant
//  timestamp  a JSON pointer to the event time (milliseconds since the
//           epoch) in the value; by default `$ts` is the Kafka timestamp
//  allow_incomplete_log  start from the earliest record left when the
//           topic has lost its beginning (finite retention); without it
//           the view refuses to start where it would differ from a replay
//
// Definitions read records through field references (FieldRef): JSON
// pointers into the value (for debezium: into the row), and `$key`,
// `$key/ptr`, `$ts`, `$type`, `$id`, `$topic`, `$partition`, `$offset`,
// `$header.NAME`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "sources/schema_registry.h"

namespace freshet {

enum class SourceFormat { kFreshet, kJson, kAvro, kProtobuf, kJsonSr };

// Avro, Protobuf, JSON Schema: framed, with the schema in a registry.
inline bool ThroughRegistry(SourceFormat format) {
  return format == SourceFormat::kAvro || format == SourceFormat::kProtobuf ||
         format == SourceFormat::kJsonSr;
}
enum class SourceEnvelope { kFreshet, kAppend, kUpsert, kDebezium };

// A reference to one value of a record.
struct FieldRef {
  enum Kind { kData, kTs, kType, kId, kKey, kKeyPointer, kTopic, kPartition, kOffset, kHeader, kConstant };
  Kind kind = kData;
  std::vector<std::string> segments;  // kData, kKeyPointer: the pointer's unescaped tokens
  std::string text;                   // kHeader: the header's name; kConstant: the value
  bool empty() const { return kind == kConstant && text.empty(); }
};

// Parses "/a/b", "$key", "$key/a", "$ts", "$type", "$id", "$topic",
// "$partition", "$offset" or "$header.NAME"; `where` prefixes errors.
Result<FieldRef> ParseFieldRef(const std::string& text, const std::string& where);

struct SourceSpec {
  std::string topic;  // "": the writer's topic (kafka.topic)
  SourceFormat format = SourceFormat::kFreshet;
  SourceFormat key_format = SourceFormat::kJson;  // kJson: text, parsed as JSON for $key/ptr
  SchemaRegistryConfig schema_registry;           // for formats ThroughRegistry
  SourceEnvelope envelope = SourceEnvelope::kFreshet;
  FieldRef type;       // where $type comes from (not for envelope freshet); empty: none
  FieldRef timestamp;  // where $ts comes from (not for envelope freshet); empty: the Kafka timestamp
  bool allow_incomplete_log = false;
  // Changelog envelopes (upsert, debezium) replace and delete rows; an
  // event stream (freshet, append) only adds events.
  bool uses_registry() const { return ThroughRegistry(format) || ThroughRegistry(key_format); }
  bool changelog() const {
    return envelope == SourceEnvelope::kUpsert || envelope == SourceEnvelope::kDebezium;
  }
};

// `source` may be null (absent): the writer's topic in freshet's envelope.
Result<SourceSpec> ParseSourceSpec(const nlohmann::ordered_json* source, const std::string& where);

const char* FormatName(SourceFormat format);
const char* EnvelopeName(SourceEnvelope envelope);

}  // namespace freshet
