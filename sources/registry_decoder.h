// RegistryDecoder: a key or value in the Confluent wire format (avro,
// protobuf, json_sr) to the JSON text a view reads: the framing, the
// writer's schema by its id (from the registry, once per process), and the
// format's decoder (AvroJson, ProtobufJson; json_sr's payload is JSON).
//
// Each record is read with its own writer schema, so a topic whose schema
// evolves (fields added or removed) reads on: a field the record's schema
// lacks is simply absent from its JSON.
//
// Errors: kInvalidArgument when the record is bad (wrong magic byte,
// truncated, an id the registry does not know, bytes that do not match the
// schema): it goes to the dead-letter topic, its reason names what is
// wrong. kUnavailable when the registry cannot be asked: the record is fine
// and must be read again later.
//
// Not thread-safe: one per decoding thread (compiled schemas are per thread,
// fetched schemas shared through the SchemaRegistry).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "sources/avro_json.h"
#include "sources/protobuf_json.h"
#include "sources/schema_registry.h"
#include "sources/source_spec.h"
#include "sources/wire_format.h"

namespace freshet {

class RegistryDecoder {
 public:
  // `format`: kAvro, kProtobuf or kJsonSr.
  RegistryDecoder(SourceFormat format, std::shared_ptr<SchemaRegistry> registry);
  ~RegistryDecoder();

  // Replaces *out with the JSON of `bytes`.
  Status ToJson(std::string_view bytes, std::string* out);
  // The schema id of the last record framed (for messages).
  int32_t last_schema_id() const { return frame_.schema_id; }

  // The writer schema `id`, compiled, for `freshet inspect`: its fields, and
  // for Protobuf the message at `message_indexes`.
  Result<std::vector<SchemaField>> Fields(int32_t id, const std::vector<int32_t>& message_indexes);

 private:
  struct Compiled {
    Status error;  // the schema does not compile: every record that names it is bad
    std::unique_ptr<AvroJson> avro;
    std::unique_ptr<ProtobufJson> protobuf;
    std::vector<SchemaField> json_fields;  // JSON Schema: its top-level properties
  };
  Result<Compiled*> Schema(int32_t id);
  Status CollectImports(const RegisteredSchema& schema, int depth,
                        std::vector<ProtobufJson::Import>* imports);

  SourceFormat format_;
  std::shared_ptr<SchemaRegistry> registry_;
  std::map<int32_t, std::unique_ptr<Compiled>> compiled_;
  WireFrame frame_;
};

}  // namespace freshet
