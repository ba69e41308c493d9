// libFuzzer target: records in the Confluent wire format (sources/
// wire_format.h, registry_decoder.h) for Avro, Protobuf and JSON Schema,
// against schemas preloaded into the registry client (no HTTP: every
// input names a preloaded id, so nothing waits on a registry).
//
// Input: byte 0 picks the format (and for Protobuf whether the message
// indexes come from the input); the rest is everything after the schema
// id: for Protobuf the message-index array, then the payload.
//
// Invariants: no crash, leak or undefined behaviour; a refusal says why; a
// record that decodes is valid JSON (simdjson parses it), since views parse
// what the decoders write.
//
// Byte 0 % 4 == 3: a Protobuf payload of a schema without maps (which the
// direct wire reader handles), read both ways: ProtobufJson's direct
// reader and DynamicMessage with reflection must agree, byte for byte, on
// the JSON or on the refusal.
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "sources/registry_decoder.h"
#include "tests/sources/wire_bytes.h"

namespace freshet {
namespace {

const char* kAvro = R"({"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "string"}]}},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "counts", "type": {"type": "map", "values": ["null", "double", "float", "boolean"]}},
  {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
  {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 3}},
  {"name": "previous", "type": ["null", "Customer"]}
]})";

const char* kProto = R"(syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
message Envelope { string id = 1; }
message Order {
  message Line { string sku = 1; sint64 qty = 2; Order parent = 3; }
  enum Status { NEW = 0; PAID = 1; }
  int64 id = 1;
  Line first = 2;
  repeated Line lines = 3;
  oneof payment { string card = 4; fixed64 voucher = 5; }
  google.protobuf.Timestamp at = 6;
  google.protobuf.Int64Value discount = 7;
  Status status = 8;
  map<string, int32> counts = 9;
  optional bytes blob = 10;
  repeated double weights = 11;
  google.protobuf.Struct extra = 12;
  map<int64, Line> by_id = 13;
}
)";

struct Decoders {
  std::unique_ptr<RegistryDecoder> decoder[3];
  Decoders() {
    SchemaRegistryConfig config;
    config.url = "http://127.0.0.1:9/fuzz";  // never asked: every id used is preloaded
    auto registry = SchemaRegistry::Shared(config);
    registry->Preload({1, "AVRO", kAvro, {}});
    registry->Preload({2, "PROTOBUF", kProto, {}});
    registry->Preload({3, "JSON", R"({"type": "object"})", {}});
    decoder[0] = std::make_unique<RegistryDecoder>(SourceFormat::kAvro, registry);
    decoder[1] = std::make_unique<RegistryDecoder>(SourceFormat::kProtobuf, registry);
    decoder[2] = std::make_unique<RegistryDecoder>(SourceFormat::kJsonSr, registry);
    direct = std::move(ProtobufJson::Compile(test_bytes::kEveryKindProto, {}).value());
  }
  std::unique_ptr<ProtobufJson> direct;
};

}  // namespace
}  // namespace freshet

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet;
  static Decoders* decoders = new Decoders();  // built once; never freed (not a leak per input)
  static simdjson::dom::parser parser;
  if (size < 1) return 0;
  if (data[0] % 4 == 3) {
    std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string a, b;
    Status sa = decoders->direct->ToJson({0}, payload, &a);
    Status sb = decoders->direct->ToJsonByReflection({0}, payload, &b);
    if (sa.ok() != sb.ok() || a != b || sa.message() != sb.message()) {
      fprintf(stderr, "registry_decoder_fuzz: direct and reflection differ:\n%s\n%s\n%s\n%s\n", a.c_str(),
              b.c_str(), sa.message().c_str(), sb.message().c_str());
      abort();
    }
    return 0;
  }
  int format = data[0] % 4;
  std::string bytes = WireHeader(format + 1, nullptr);
  bytes.append(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string json;
  Status st = decoders->decoder[format]->ToJson(bytes, &json);
  if (!st.ok()) {
    if (st.message().empty()) abort();                   // every refusal says why
    if (st.code() == StatusCode::kUnavailable) abort();  // every id is preloaded: never "ask the registry"
    return 0;
  }
  simdjson::dom::element e;
  if (format != 2 && parser.parse(json).get(e) != simdjson::SUCCESS) {
    fprintf(stderr, "registry_decoder_fuzz: the decoder wrote invalid JSON: %s\n", json.c_str());
    abort();
  }
  return 0;
}
