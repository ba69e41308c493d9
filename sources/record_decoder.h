// RecordDecoder: turns one Kafka record, in whatever format and envelope its
// topic uses (SourceSpec), into a SourceRecord: what a view reads. Views
// never see a format: they ask a SourceRecord for field references.
//
// Threading: one decoder per consuming thread. A SourceRecord points into
// the decoder's parse buffers and the RawRecord: valid until the next
// Decode.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/kafka.h"
#include "core/metrics.h"
#include "core/status.h"
#include "sources/decoded_records.h"
#include "sources/source_spec.h"

namespace freshet {

class RegistryDecoder;

// One record as the topic holds it.
struct RawRecord {
  std::string_view topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
  std::optional<std::string_view> key;    // nullopt: a null key
  std::optional<std::string_view> value;  // nullopt: a tombstone
  const KafkaMessage* message = nullptr;  // its headers, when read from Kafka
  std::vector<KafkaHeader> headers;       // otherwise (tests, tools)

  static RawRecord From(const KafkaMessage& message);
  std::optional<std::string_view> Header(const std::string& name) const;
};

// Logical types that Debezium's JSON converter names in the schema, for the
// values it encodes (a NUMERIC as base64 of its unscaled integer, ...).
enum class LogicalType {
  kNone,
  kDecimal,
  kDate,
  kTimestampMillis,
  kTimestampMicros,
  kTimestampNanos,
  kZonedTimestamp
};

struct LogicalField {
  std::string_view name;  // a top-level field of the row
  LogicalType type = LogicalType::kNone;
  int scale = 0;  // kDecimal
};

struct SourceRecord {
  enum class Change {
    kEvent,   // an event (freshet, append) or a row's new value (upsert, debezium)
    kDelete,  // the row goes (a tombstone on an upsert topic, a Debezium delete)
    kSkip,    // nothing to apply (the tombstone after a Debezium delete, ...)
  };
  Change change = Change::kEvent;
  std::string_view type;  // $type: the event type, the Debezium op (c, r, u, d), or from source.type
  std::string_view id;    // $id: the freshet envelope's id, else empty
  int64_t ts_ms = 0;      // $ts
  bool has_data = false;
  simdjson::dom::element data;  // what JSON pointers address: event data, the value, the row
  bool has_key_json = false;
  simdjson::dom::element key_json;  // the key parsed as JSON (Debezium: its payload), for $key/ptr
  // $key when the key was decoded (source.key_format): a string key's
  // text, else the key's JSON. Unset: $key is the raw key.
  std::optional<std::string_view> key_text;
  const RawRecord* raw = nullptr;
  const std::vector<LogicalField>* logical = nullptr;  // of the row's fields; may be null

  // The logical type of top-level field `name` (kNone if unknown).
  const LogicalField* Logical(std::string_view name) const;
};

class RecordDecoder {
 public:
  // `parse_key`: parse keys as JSON (a definition reads $key/ptr).
  RecordDecoder(SourceSpec spec, bool parse_key);
  ~RecordDecoder();
  // kInvalidArgument: the record is bad (it goes to the dead-letter topic),
  // with a reason that names what is wrong. kUnavailable (formats through a
  // schema registry): the registry cannot be asked now; the record is fine,
  // decode it again later.
  Status Decode(const RawRecord& raw, SourceRecord* out);
  const SourceSpec& spec() const { return spec_; }
  // Where a view's decoder counts the records in a registry format it
  // decoded itself, those it took decoded from another decoder of the
  // process, and the times it waited for a slower one (DecodedRecords).
  // Each may be null.
  struct Counters {
    Counter* decoded = nullptr;
    Counter* taken = nullptr;
    Counter* pacing_waits = nullptr;
  };
  // For a view's decoder: shares decodes with the process's other decoders
  // of the topic from now on (DecodedRecords), not from the first record
  // read (so that views started together share from their first record).
  // `log_end` says where each partition ends as last seen (the cached high
  // watermark; -1 when not known), so that the decoder knows when it is
  // catching up: decoders catching up on the same topic keep together.
  // Without this call a decoder joins at its first record read from Kafka,
  // is never taken for catching up, and counts nothing.
  void ShareDecodes(std::function<int64_t(int32_t partition)> log_end, Counters counters);

 private:
  Status DecodeFreshet(std::string_view value, SourceRecord* out);
  Status DecodeDebezium(std::string_view value, SourceRecord* out);
  Status DecodeKey(const RawRecord& raw, SourceRecord* out);
  // Registry formats: the key's and the value's JSON into decoded_, from
  // another decoder of the process that read the record already, or
  // decoded here (and shared).
  Status FromRegistry(const RawRecord& raw);
  Status ReadTypeAndTime(SourceRecord* out);
  void ReadLogicalTypes(simdjson::dom::element schema);

  SourceSpec spec_;
  bool parse_key_ = false;
  // Kept: they keep their buffers, so parsing allocates nothing per record.
  simdjson::dom::parser value_parser_;
  simdjson::dom::parser key_parser_;
  std::vector<LogicalField> logical_;
  std::string type_text_;  // scratch for a $type that is not a view into the record
  // Formats through a schema registry: the decoders, and the JSON they made.
  std::unique_ptr<RegistryDecoder> value_registry_, key_registry_;
  DecodedRecords::Decoded decoded_;
  // Shared with the process's other decoders of the same topic and formats
  // (joined by ShareDecodes or on the first record read from Kafka); the
  // partitions seen.
  std::shared_ptr<DecodedRecords> shared_;
  int reader_ = -1;  // this decoder's number in shared_
  std::string shared_topic_;
  struct SharedPartition {
    DecodedRecords::Partition* records = nullptr;
    int64_t log_end = -1;     // as last asked of log_end_
    int records_to_next = 0;  // before log_end is asked again
  };
  std::map<int32_t, SharedPartition> shared_partitions_;
  std::function<int64_t(int32_t)> log_end_;
  Counters counters_;
  // The partition's shared records when the decoders share them (paced
  // there), else null.
  DecodedRecords::Partition* Shared(const RawRecord& raw);
  void ForgetShared();
  void JoinShared();
};

// Where `ref` points in `record`: for kData and kKeyPointer the element
// (absent when missing or JSON null). Other kinds are read by the caller.
bool FindElement(const SourceRecord& record, const FieldRef& ref, simdjson::dom::element* out);

}  // namespace freshet
