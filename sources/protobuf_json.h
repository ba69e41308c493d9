// ProtobufJson: one Protobuf schema (the .proto text a registry holds, or a
// base64 FileDescriptorProto), compiled once at run time (libprotoc's
// parser, a DescriptorPool, DynamicMessage), that turns a message into the
// JSON a view reads:
//
//   message, map  -> object keyed by the .proto field names (not camelCase)
//   repeated      -> array          enum -> its value's name
//   int64 & co    -> numbers (not the strings of Protobuf's JSON mapping)
//   bytes         -> base64 string  oneof -> only the member that is set
//   google.protobuf.Timestamp -> "YYYY-MM-DD HH:MM:SS.ffffff+00"
//   wrappers (Int64Value, StringValue, ...) -> the bare value
//   a message field that is not set, an unset `optional` -> absent (NULL)
//
// Not thread-safe: one per decoding thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "sources/schema_field.h"

namespace freshet {

class ProtobufJson {
 public:
  // A schema this one imports (a registry reference): its import path and text.
  struct Import {
    std::string name;
    std::string text;
  };
  // `imports` must come dependencies first. Imports of Google's well-known
  // types (google/protobuf/timestamp.proto, ...) need no entry.
  static Result<std::unique_ptr<ProtobufJson>> Compile(const std::string& schema_text,
                                                       const std::vector<Import>& imports);
  ~ProtobufJson();
  ProtobufJson(const ProtobufJson&) = delete;
  ProtobufJson& operator=(const ProtobufJson&) = delete;

  // Appends the JSON of the message of type `message_indexes` (the wire
  // format's path: top-level message, then nested) in `payload` to *out.
  //
  // Most messages are read straight from their wire format; what that
  // reader does not handle (maps, groups, a message field sent twice,
  // required fields, Struct, Duration, FieldMask) is parsed into a
  // DynamicMessage and written from it by reflection. Both write the same
  // JSON for the same bytes.
  Status ToJson(const std::vector<int32_t>& message_indexes, std::string_view payload, std::string* out);
  // The same, always through DynamicMessage: for tests that hold the direct
  // reader to it.
  Status ToJsonByReflection(const std::vector<int32_t>& message_indexes, std::string_view payload,
                            std::string* out);

  // The fields of the first top-level message, for `freshet inspect`.
  std::vector<SchemaField> Fields(const std::vector<int32_t>& message_indexes) const;
  // The full name of the message at `message_indexes`, or "" if none.
  std::string MessageName(const std::vector<int32_t>& message_indexes) const;

 private:
  struct State;
  explicit ProtobufJson(std::unique_ptr<State> state);
  Status Decode(const std::vector<int32_t>& message_indexes, std::string_view payload, bool direct,
                std::string* out);
  std::unique_ptr<State> state_;
};

}  // namespace freshet
