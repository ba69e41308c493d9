// TopicInspector: looks at a sample of a topic's records and says what they
// are (format, envelope), which fields they carry with which types, and
// writes a view definition that materializes the topic, for `freshet
// inspect`. A guess from a sample: the user reads it before using it.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sources/schema_field.h"
#include "sources/schema_registry.h"

namespace freshet {

struct SampleRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;    // nullopt: null key
  std::optional<std::string> value;  // nullopt: tombstone
};

struct InspectedField {
  std::string pointer;  // where it is: "/email", "$key"
  std::string column;   // a valid column name for it
  std::string
      type;  // the definition's type: text, bigint, double, boolean, numeric, date, timestamptz, uuid, jsonb
  std::string seen;    // what the sample held, e.g. "string (ISO timestamp)", "Debezium Decimal (scale 2)"
  size_t present = 0;  // records in which it was present and not null
};

struct Inspection {
  size_t records = 0, tombstones = 0, null_keys = 0, distinct_keys = 0;
  std::string format = "json";      // freshet, json, or "unsupported"
  std::string envelope = "append";  // freshet, append, upsert, debezium
  std::string why;                  // why this format and envelope
  bool debezium_schemas = false;    // {"schema", "payload"} records
  std::vector<InspectedField> key_fields;
  std::vector<InspectedField> fields;
  nlohmann::ordered_json definition;  // null when the topic cannot be read as a view
  // Records in the schema-registry wire format: the writer schema of the
  // first one ("schema id 3 (AVRO)") and the fields it declares.
  std::string schema;
  std::vector<SchemaField> schema_fields;
};

// `topic` and `view_name` go into the definition.
Inspection InspectSample(const std::vector<SampleRecord>& sample, const std::string& topic,
                         const std::string& view_name);

// The same for a sample whose values (and keys) may be in the Confluent
// schema-registry wire format: they are decoded through `registry` (its url
// empty: none, and such records are only recognised), and the definition
// reads them with format avro, protobuf or json_sr.
Inspection InspectSample(const std::vector<SampleRecord>& sample, const std::string& topic,
                         const std::string& view_name, const SchemaRegistryConfig& registry);

// `name` turned into a valid, lower-case column or view name.
std::string IdentifierFor(const std::string& name);

}  // namespace freshet
