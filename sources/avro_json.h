// AvroJson: one Avro writer schema, compiled once (avro-c), that turns a
// bare binary datum written with it into the JSON a view reads, the same
// shape the json format gives:
//
//   record, map   -> object           array -> array
//   union         -> the branch's value (null -> null), not Avro's {"type": v}
//   enum          -> its symbol       bytes, fixed -> base64 string
//   decimal       -> a decimal string ("12.50"), exact
//   date          -> "YYYY-MM-DD"     time-millis/micros -> "HH:MM:SS.fff"
//   timestamp-millis/micros (and local-) -> "YYYY-MM-DD HH:MM:SS.fff+00"
//   uuid          -> the string       NaN, infinities -> "NaN", "Infinity"
//
// avro-c 1.11 knows no logical types: they are read from the schema's JSON
// beside it. Not thread-safe: one per decoding thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "sources/schema_field.h"

namespace freshet {

class AvroJson {
 public:
  // kInvalidArgument when `schema_text` is not an Avro schema avro-c accepts.
  static Result<std::unique_ptr<AvroJson>> Compile(const std::string& schema_text);
  ~AvroJson();
  AvroJson(const AvroJson&) = delete;
  AvroJson& operator=(const AvroJson&) = delete;

  // Appends the JSON of the datum `payload` to *out. kInvalidArgument when
  // the bytes are not one whole datum of this schema.
  Status ToJson(std::string_view payload, std::string* out);

  // The top-level fields (a record schema), for `freshet inspect`.
  std::vector<SchemaField> Fields() const;

  struct Node;  // what the schema's JSON says beside avro-c's schema (internal)

 private:
  struct State;
  explicit AvroJson(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace freshet
