#include "sources/record_decoder.h"

#include <charconv>

#include "sources/registry_decoder.h"

namespace freshet {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

bool Walk(element from, const std::vector<std::string>& segments, element* out) {
  element v = from;
  for (const std::string& segment : segments) {
    if (v.is_object()) {
      if (v.get_object().value_unsafe().at_key(segment).get(v) != simdjson::SUCCESS) return false;
    } else if (v.is_array()) {
      size_t index = 0;
      auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (error != std::errc() || end != segment.data() + segment.size()) return false;
      if (v.get_array().value_unsafe().at(index).get(v) != simdjson::SUCCESS) return false;
    } else {
      return false;
    }
  }
  if (v.is_null()) return false;
  *out = v;
  return true;
}

// Debezium's JSON converter with schemas.enable=true wraps each key and
// value as {"schema": ..., "payload": ...}; without, it writes the payload.
bool Unwrap(element root, element* payload, element* schema) {
  object o;
  if (root.get_object().get(o) != simdjson::SUCCESS) return false;
  element p, s;
  if (o.at_key("payload").get(p) != simdjson::SUCCESS || o.at_key("schema").get(s) != simdjson::SUCCESS)
    return false;
  *payload = p;
  if (schema) *schema = s;
  return true;
}

LogicalType LogicalTypeNamed(std::string_view name) {
  if (name == "org.apache.kafka.connect.data.Decimal") return LogicalType::kDecimal;
  if (name == "io.debezium.time.Date" || name == "org.apache.kafka.connect.data.Date")
    return LogicalType::kDate;
  if (name == "io.debezium.time.Timestamp" || name == "org.apache.kafka.connect.data.Timestamp")
    return LogicalType::kTimestampMillis;
  if (name == "io.debezium.time.MicroTimestamp") return LogicalType::kTimestampMicros;
  if (name == "io.debezium.time.NanoTimestamp") return LogicalType::kTimestampNanos;
  if (name == "io.debezium.time.ZonedTimestamp") return LogicalType::kZonedTimestamp;
  return LogicalType::kNone;
}

// Room for simdjson's padding after `text`, reserved when it is made, so
// that it can be parsed in place (ParseJson).
void ReservePadding(std::string* text) { text->reserve(text->size() + simdjson::SIMDJSON_PADDING); }

// Parses `text`: in place when it has the padding reserved after it (a
// string of ours: what a registry format decoded to), instead of being
// copied into the parser's buffer first. Never reallocates `text`: views
// into it stay valid.
simdjson::error_code ParseJson(simdjson::dom::parser& parser, std::string_view text, const std::string* owned,
                               element* out) {
  if (owned && owned->capacity() >= owned->size() + simdjson::SIMDJSON_PADDING)
    return parser.parse(owned->data(), owned->size(), false).get(*out);
  return parser.parse(text.data(), text.size()).get(*out);
}

}  // namespace

RawRecord RawRecord::From(const KafkaMessage& message) {
  RawRecord raw;
  raw.topic = message.topic();
  raw.partition = message.partition();
  raw.offset = message.offset();
  raw.timestamp_ms = message.timestamp_ms();
  if (message.has_key()) raw.key = message.key();
  if (message.has_value()) raw.value = message.value();
  raw.message = &message;
  return raw;
}

std::optional<std::string_view> RawRecord::Header(const std::string& name) const {
  if (message) return message->header(name.c_str());
  for (auto it = headers.rbegin(); it != headers.rend(); ++it)
    if (it->name == name) return std::string_view(it->value);
  return std::nullopt;
}

const LogicalField* SourceRecord::Logical(std::string_view name) const {
  if (!logical) return nullptr;
  for (const LogicalField& f : *logical)
    if (f.name == name) return &f;
  return nullptr;
}

bool FindElement(const SourceRecord& record, const FieldRef& ref, element* out) {
  if (ref.kind == FieldRef::kData) return record.has_data && Walk(record.data, ref.segments, out);
  if (ref.kind == FieldRef::kKeyPointer)
    return record.has_key_json && Walk(record.key_json, ref.segments, out);
  return false;
}

RecordDecoder::RecordDecoder(SourceSpec spec, bool parse_key)
    : spec_(std::move(spec)), parse_key_(parse_key) {
  if (spec_.uses_registry()) {
    auto registry = SchemaRegistry::Shared(spec_.schema_registry);
    if (ThroughRegistry(spec_.format))
      value_registry_ = std::make_unique<RegistryDecoder>(spec_.format, registry);
    if (ThroughRegistry(spec_.key_format))
      key_registry_ = std::make_unique<RegistryDecoder>(spec_.key_format, registry);
  }
}

RecordDecoder::~RecordDecoder() {
  ForgetShared();
  if (shared_) shared_->Leave();
}

void RecordDecoder::ForgetShared() {
  for (auto& [number, p] : shared_partitions_) p.records->Forget(reader_);
  shared_partitions_.clear();
}

void RecordDecoder::JoinShared() {
  if (shared_ || !(value_registry_ || key_registry_)) return;
  shared_ = DecodedRecords::For(spec_);
  reader_ = shared_->Join();
}

void RecordDecoder::ShareDecodes(std::function<int64_t(int32_t partition)> log_end, Counters counters) {
  log_end_ = std::move(log_end);
  counters_ = counters;
  JoinShared();
}

DecodedRecords::Partition* RecordDecoder::Shared(const RawRecord& raw) {
  // Records read from Kafka (a topic and an offset) can be shared; others
  // (tests, tools) are just decoded.
  if (raw.topic.empty() || raw.partition < 0 || raw.offset < 0) return nullptr;
  JoinShared();
  if (!shared_ || !shared_->shared()) return nullptr;
  if (raw.topic != shared_topic_) {
    ForgetShared();
    shared_topic_ = raw.topic;
  }
  SharedPartition& p = shared_partitions_[raw.partition];
  if (!p.records) p.records = shared_->partition(raw.topic, raw.partition);
  // The cached end costs a lookup inside librdkafka: asked now and then.
  if (log_end_ && --p.records_to_next <= 0) {
    p.log_end = log_end_(raw.partition);
    p.records_to_next = 256;
  }
  bool catching_up = p.log_end >= 0 && p.log_end - raw.offset > DecodedRecords::kCatchingUpDistance;
  if (p.records->Pace(reader_, raw.offset, catching_up) && counters_.pacing_waits)
    counters_.pacing_waits->Add();
  return p.records;
}

Status RecordDecoder::FromRegistry(const RawRecord& raw) {
  DecodedRecords::Partition* partition = Shared(raw);
  bool key = raw.key && key_registry_, value = raw.value && value_registry_;
  if (!key && !value) {  // nothing to decode (a tombstone, ...)
    decoded_.key.clear();
    decoded_.value.clear();
    return Status::Ok();
  }
  if (partition && partition->Find(raw.offset, &decoded_)) {
    if (counters_.taken) counters_.taken->Add();
  } else {
    if (counters_.decoded) counters_.decoded->Add();
    decoded_.key_status = Status::Ok();
    decoded_.value_status = Status::Ok();
    decoded_.key.clear();
    decoded_.value.clear();
    if (key) decoded_.key_status = key_registry_->ToJson(*raw.key, &decoded_.key).WithContext("key");
    if (decoded_.key_status.ok() && value)
      decoded_.value_status = value_registry_->ToJson(*raw.value, &decoded_.value);
    // "Ask again later" is not an answer to keep.
    if (partition && decoded_.key_status.code() != StatusCode::kUnavailable &&
        decoded_.value_status.code() != StatusCode::kUnavailable)
      partition->Put(raw.offset, decoded_);
  }
  ReservePadding(&decoded_.key);
  ReservePadding(&decoded_.value);
  if (!decoded_.key_status.ok()) return decoded_.key_status;
  return decoded_.value_status;
}

Status RecordDecoder::DecodeKey(const RawRecord& raw, SourceRecord* out) {
  std::string_view key = *raw.key;
  if (key_registry_) {
    key = decoded_.key;  // decoded by FromRegistry
  } else if (!parse_key_) {
    return Status::Ok();
  }
  element parsed;
  if (ParseJson(key_parser_, key, key_registry_ ? &decoded_.key : nullptr, &parsed) != simdjson::SUCCESS) {
    if (key_registry_) return Status::InvalidArgument("key: not valid JSON after decoding");
    return Status::Ok();  // a text key: $key/ptr finds nothing in it
  }
  element payload;
  if (spec_.envelope == SourceEnvelope::kDebezium && Unwrap(parsed, &payload, nullptr)) parsed = payload;
  out->key_json = parsed;
  out->has_key_json = true;
  if (key_registry_) {
    std::string_view text;
    out->key_text = parsed.get_string().get(text) == simdjson::SUCCESS ? text : key;
  }
  return Status::Ok();
}

Status RecordDecoder::Decode(const RawRecord& raw, SourceRecord* out) {
  *out = SourceRecord();
  out->raw = &raw;
  out->ts_ms = raw.timestamp_ms > 0 ? raw.timestamp_ms : 0;
  if (spec_.envelope == SourceEnvelope::kFreshet) {
    if (!raw.value) return Status::InvalidArgument("event value is null (a tombstone), not a freshet event");
    return DecodeFreshet(*raw.value, out);
  }
  if (value_registry_ || key_registry_) FRESHET_RETURN_IF_ERROR(FromRegistry(raw));
  if (raw.key) FRESHET_RETURN_IF_ERROR(DecodeKey(raw, out));
  std::string_view value;
  if (raw.value) {
    value = *raw.value;
    if (value_registry_) value = decoded_.value;
  }
  switch (spec_.envelope) {
    case SourceEnvelope::kAppend:
      // A null value adds nothing to a stream of events.
      if (!raw.value) {
        out->change = SourceRecord::Change::kSkip;
        return Status::Ok();
      }
      break;
    case SourceEnvelope::kUpsert:
      if (!raw.key)
        return Status::InvalidArgument("upsert record without a key: the key is the row's identity");
      if (!raw.value) {
        out->change = SourceRecord::Change::kDelete;
        out->type = "delete";
        return Status::Ok();
      }
      break;
    case SourceEnvelope::kDebezium:
      // The tombstone after a delete only lets compaction drop the key.
      if (!raw.value) {
        out->change = SourceRecord::Change::kSkip;
        return Status::Ok();
      }
      return DecodeDebezium(value, out);
    case SourceEnvelope::kFreshet:
      break;
  }
  if (ParseJson(value_parser_, value, value_registry_ ? &decoded_.value : nullptr, &out->data) !=
      simdjson::SUCCESS)
    return Status::InvalidArgument("value is not valid JSON");
  out->has_data = true;
  if (spec_.envelope == SourceEnvelope::kUpsert) out->type = "upsert";
  return ReadTypeAndTime(out);
}

Status RecordDecoder::DecodeFreshet(std::string_view value, SourceRecord* out) {
  // The same checks, in the same order and words, as DecodeEventValue.
  element root;
  if (value_parser_.parse(value.data(), value.size()).get(root) != simdjson::SUCCESS)
    return Status::InvalidArgument("event value is not valid JSON");
  object o;
  if (root.get_object().get(o) != simdjson::SUCCESS)
    return Status::InvalidArgument("event value is not a JSON object");
  if (o.at_key("type").get_string().get(out->type) != simdjson::SUCCESS)
    return Status::InvalidArgument("event.type: missing or not a string");
  element field;
  if (o.at_key("id").get(field) == simdjson::SUCCESS && field.get_string().get(out->id) != simdjson::SUCCESS)
    return Status::InvalidArgument("event.id: not a string");
  out->ts_ms = 0;
  if (o.at_key("ts").get(field) == simdjson::SUCCESS) {
    uint64_t unsigned_ts = 0;
    if (field.get_int64().get(out->ts_ms) != simdjson::SUCCESS) {
      if (field.get_uint64().get(unsigned_ts) != simdjson::SUCCESS)
        return Status::InvalidArgument("event.ts: not an integer");
      out->ts_ms = static_cast<int64_t>(unsigned_ts);
    }
  }
  if (o.at_key("data").get(out->data) != simdjson::SUCCESS || !out->data.is_object())
    return Status::InvalidArgument("event.data: missing or not an object");
  out->has_data = true;
  return Status::Ok();
}

Status RecordDecoder::DecodeDebezium(std::string_view value, SourceRecord* out) {
  element root;
  if (value_parser_.parse(value.data(), value.size()).get(root) != simdjson::SUCCESS)
    return Status::InvalidArgument("value is not valid JSON");
  element payload = root, schema;
  bool has_schema = Unwrap(root, &payload, &schema);
  if (payload.is_null()) {
    out->change = SourceRecord::Change::kSkip;
    return Status::Ok();
  }
  object change;
  if (payload.get_object().get(change) != simdjson::SUCCESS)
    return Status::InvalidArgument("Debezium record: the value is not a JSON object");
  std::string_view op;
  if (change.at_key("op").get_string().get(op) != simdjson::SUCCESS || op.empty())
    return Status::InvalidArgument(
        "Debezium record without \"op\": envelope debezium expects Debezium's change "
        "events {before, after, source, op, ts_ms}");
  out->type = op;
  if (op.size() != 1)
    return Status::InvalidArgument("Debezium record with unknown op \"" + std::string(op) + "\"");
  element row;
  const char* row_field = "after";
  switch (op[0]) {
    case 'c':
    case 'r':
    case 'u':
      if (change.at_key("after").get(row) != simdjson::SUCCESS || !row.is_object())
        return Status::InvalidArgument("Debezium record with op " + std::string(op) +
                                       " but no \"after\" object");
      out->data = row;
      out->has_data = true;
      break;
    case 'd':
      out->change = SourceRecord::Change::kDelete;
      row_field = "before";
      // With REPLICA IDENTITY DEFAULT `before` holds only the key columns.
      if (change.at_key("before").get(row) == simdjson::SUCCESS && row.is_object()) {
        out->data = row;
        out->has_data = true;
      }
      break;
    case 't':
      return Status::InvalidArgument(
          "Debezium truncate (op t): every row of the source table went at once, which "
          "freshet does not apply row by row; rebuild the view (freshet rebuild)");
    case 'm':  // a logical decoding message, not a row
      out->change = SourceRecord::Change::kSkip;
      return Status::Ok();
    default:
      return Status::InvalidArgument("Debezium record with unknown op \"" + std::string(op) + "\"");
  }
  logical_.clear();
  if (has_schema) {
    object s;
    simdjson::dom::array fields;
    if (schema.get_object().get(s) == simdjson::SUCCESS &&
        s.at_key("fields").get_array().get(fields) == simdjson::SUCCESS) {
      for (element f : fields) {
        std::string_view name;
        if (f.at_key("field").get_string().get(name) == simdjson::SUCCESS && name == row_field) {
          ReadLogicalTypes(f);
          break;
        }
      }
    }
    out->logical = &logical_;
  }
  return ReadTypeAndTime(out);
}

void RecordDecoder::ReadLogicalTypes(element row_schema) {
  simdjson::dom::array fields;
  if (row_schema.at_key("fields").get_array().get(fields) != simdjson::SUCCESS) return;
  for (element f : fields) {
    std::string_view field, name;
    if (f.at_key("field").get_string().get(field) != simdjson::SUCCESS) continue;
    if (f.at_key("name").get_string().get(name) != simdjson::SUCCESS) continue;
    LogicalField lf{field, LogicalTypeNamed(name), 0};
    if (lf.type == LogicalType::kNone) continue;
    if (lf.type == LogicalType::kDecimal) {
      std::string_view scale;
      int64_t scale_number = 0;
      if (f.at_key("parameters").at_key("scale").get_string().get(scale) == simdjson::SUCCESS)
        std::from_chars(scale.data(), scale.data() + scale.size(), lf.scale);
      else if (f.at_key("parameters").at_key("scale").get_int64().get(scale_number) == simdjson::SUCCESS)
        lf.scale = static_cast<int>(scale_number);
    }
    logical_.push_back(lf);
  }
}

Status RecordDecoder::ReadTypeAndTime(SourceRecord* out) {
  const RawRecord& raw = *out->raw;
  switch (spec_.type.kind) {
    case FieldRef::kConstant:
      if (!spec_.type.text.empty()) out->type = spec_.type.text;
      break;
    case FieldRef::kHeader:
      if (auto h = raw.Header(spec_.type.text)) out->type = *h;
      break;
    default: {
      element v;
      if (FindElement(*out, spec_.type, &v)) {
        if (v.get_string().get(out->type) != simdjson::SUCCESS) {
          type_text_ = simdjson::to_string(v);
          out->type = type_text_;
        }
      }
    }
  }
  if (spec_.timestamp.kind == FieldRef::kData) {
    element v;
    if (FindElement(*out, spec_.timestamp, &v)) {
      int64_t ms = 0;
      if (v.get_int64().get(ms) != simdjson::SUCCESS)
        return Status::InvalidArgument("source.timestamp: expected milliseconds since the epoch, got " +
                                       simdjson::to_string(v));
      out->ts_ms = ms;
    }
  }
  return Status::Ok();
}

}  // namespace freshet
