// Records in the Confluent wire format: the framing, Avro and Protobuf to
// the JSON a view reads, and what a declarative view makes of them. The
// schemas are preloaded into the registry client (no HTTP here; the
// integration test sr_sources_test talks to a real registry).
#include "sources/registry_decoder.h"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <random>

#include "sources/record_decoder.h"
#include "tests/sources/wire_bytes.h"

namespace freshet {
namespace {

using namespace test_bytes;

// A registry no one answers at: every schema these tests use is preloaded,
// and any other id is "the registry is down".
std::shared_ptr<SchemaRegistry> Registry(const std::string& name) {
  SchemaRegistryConfig config;
  config.url = "http://127.0.0.1:9/" + name;  // port 9 (discard): refused at once
  config.connect_timeout_ms = 200;
  return SchemaRegistry::Shared(config);
}

// A source definition's "source" object, parsed.
SourceSpec Spec(const std::string& source_json) {
  nlohmann::ordered_json source = nlohmann::ordered_json::parse(source_json);
  auto spec = ParseSourceSpec(&source, "source");
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return spec.ok() ? *spec : SourceSpec();
}

// A record of topic t with `key` and `value` (which it points into).
RawRecord Raw(std::string_view key, std::string_view value) {
  RawRecord raw;
  raw.topic = "t";
  raw.key = key;
  raw.value = value;
  return raw;
}

// The JSON text of what `ref` finds in `record`, "" when nothing.
std::string At(const SourceRecord& record, const std::string& ref) {
  simdjson::dom::element e;
  if (!FindElement(record, ParseFieldRef(ref, "ref").value(), &e)) return "";
  return simdjson::to_string(e);
}

const char* kOrderSchema = R"({"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "string"}]}},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "counts", "type": {"type": "map", "values": "long"}},
  {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
  {"name": "note", "type": ["null", "string"], "default": null},
  {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 2}},
  {"name": "previous", "type": ["null", "Customer"]}
]})";

std::string OrderDatum() {
  std::string d;
  Long(7, &d);                                                 // id
  Bytes("c1", &d);                                             // customer.id
  Bytes(std::string("\xfb\x1e", 2), &d);                       // amount: -1250 -> -12.50
  Long(19000, &d);                                             // day
  Long(1700000000123, &d);                                     // at
  Bytes("123e4567-e89b-12d3-a456-426614174000", &d);           // ref
  Long(2, &d), Bytes("a", &d), Bytes("b\"", &d), Long(0, &d);  // tags
  Long(1, &d), Bytes("x", &d), Long(-3, &d), Long(0, &d);      // counts
  Long(1, &d);                                                 // status PAID
  Long(1, &d), Bytes("hi", &d);                                // note: branch 1
  d.append("\x01\x02", 2);                                     // code
  Long(0, &d);                                                 // previous: null
  return d;
}

TEST(WireFormat, ReadsTheHeaderAndTheProtobufMessageIndexes) {
  WireFrame f;
  std::vector<int32_t> nested = {1, 0};
  std::string framed = WireHeader(258, &nested) + "payload";
  ASSERT_TRUE(ParseWireFrame(framed, true, &f).ok());
  EXPECT_EQ(f.schema_id, 258);
  EXPECT_EQ(f.message_indexes, nested);
  EXPECT_EQ(f.payload, "payload");
  std::vector<int32_t> first = {0};
  EXPECT_EQ(WireHeader(1, &first), std::string("\0\0\0\0\1\0", 6));  // [0] is the single byte 0x00
  ASSERT_TRUE(ParseWireFrame(WireHeader(1, &first) + "x", true, &f).ok());
  EXPECT_EQ(f.message_indexes, first);
  ASSERT_TRUE(ParseWireFrame(WireHeader(5, nullptr) + "{}", false, &f).ok());
  EXPECT_EQ(f.payload, "{}");
}

TEST(WireFormat, RefusesAWrongMagicByteOrATruncatedHeaderByName) {
  WireFrame f;
  EXPECT_NE(ParseWireFrame("{\"a\":1}", false, &f).message().find("wrong magic byte 0x7b"),
            std::string::npos);
  EXPECT_NE(ParseWireFrame(std::string("\x01"
                                       "0123456789abcdef",
                                       17),
                           false, &f)
                .message()
                .find("GUID"),
            std::string::npos);
  EXPECT_NE(ParseWireFrame(std::string("\0\0\1", 3), false, &f).message().find("truncated"),
            std::string::npos);
  EXPECT_NE(ParseWireFrame(std::string("\0\0\0\0\1", 5), true, &f).message().find("truncated"),
            std::string::npos);
  EXPECT_NE(ParseWireFrame(std::string("\0\0\0\0\1\x04\x02", 7), true, &f).message().find("truncated"),
            std::string::npos);  // two indexes announced, one there
}

TEST(AvroJson, DecodesEveryKindOfValueAndTheLogicalTypes) {
  auto avro = AvroJson::Compile(kOrderSchema);
  ASSERT_TRUE(avro.ok()) << avro.status().message();
  std::string json;
  ASSERT_TRUE((*avro)->ToJson(OrderDatum(), &json).ok());
  EXPECT_EQ(
      json,
      R"({"id":7,"customer":{"id":"c1"},"amount":"-12.50","day":"2022-01-08",)"
      R"("at":"2023-11-14 22:13:20.123+00","ref":"123e4567-e89b-12d3-a456-426614174000",)"
      R"("tags":["a","b\""],"counts":{"x":-3},"status":"PAID","note":"hi","code":"AQI=","previous":null})");
  auto fields = (*avro)->Fields();
  ASSERT_EQ(fields.size(), 12u);
  EXPECT_EQ(fields[0].column_type, "bigint");
  EXPECT_EQ(fields[2].column_type, "numeric");
  EXPECT_EQ(fields[3].column_type, "date");
  EXPECT_EQ(fields[4].column_type, "timestamptz");
  EXPECT_EQ(fields[5].column_type, "uuid");
  EXPECT_EQ(fields[9].column_type, "text");  // ["null", "string"]
}

TEST(AvroJson, RefusesATruncatedDatumOrOneWithBytesLeftOver) {
  auto avro = AvroJson::Compile(kOrderSchema);
  ASSERT_TRUE(avro.ok());
  std::string datum = OrderDatum(), json;
  EXPECT_FALSE((*avro)->ToJson(datum.substr(0, datum.size() - 3), &json).ok());
  json.clear();
  EXPECT_NE((*avro)->ToJson(datum + "zz", &json).message().find("left over"), std::string::npos);
  EXPECT_FALSE(
      AvroJson::Compile(R"({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]})")
          .ok());
}

const char* kProto = R"(syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Envelope { string id = 1; }
message Order {
  message Line { string sku = 1; int64 qty = 2; }
  enum Status { NEW = 0; PAID = 1; }
  int64 id = 1;
  Line first = 2;
  repeated Line lines = 3;
  oneof payment { string card = 4; int64 voucher = 5; }
  google.protobuf.Timestamp at = 6;
  google.protobuf.Int64Value discount = 7;
  Status status = 8;
  map<string, int32> counts = 9;
  optional string note = 10;
  bytes blob = 11;
}
)";

// The test's own Protobuf serializer: libprotobuf's DynamicMessage over the
// same .proto text, compiled here.
class ProtoWriter {
 public:
  ProtoWriter() : pool_(google::protobuf::DescriptorPool::generated_pool()) {
    google::protobuf::io::ArrayInputStream input(kProto, static_cast<int>(strlen(kProto)));
    google::protobuf::io::Tokenizer tokenizer(&input, nullptr);
    google::protobuf::FileDescriptorProto file;
    google::protobuf::compiler::Parser parser;
    EXPECT_TRUE(parser.Parse(&tokenizer, &file));
    file.set_name("order.proto");
    EXPECT_NE(pool_.BuildFile(file), nullptr);
    factory_.SetDelegateToGeneratedFactory(true);
  }
  std::unique_ptr<google::protobuf::Message> New(const std::string& type) {
    return std::unique_ptr<google::protobuf::Message>(
        factory_.GetPrototype(pool_.FindMessageTypeByName(type))->New());
  }

 private:
  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_{&pool_};
};

TEST(ProtobufJson, DecodesNestedMessagesOneofsAndWellKnownTypes) {
  ProtoWriter writer;
  auto order = writer.New("shop.Order");
  const auto* d = order->GetDescriptor();
  const auto* r = order->GetReflection();
  r->SetInt64(order.get(), d->FindFieldByName("id"), 9000000000);
  auto* first = r->MutableMessage(order.get(), d->FindFieldByName("first"));
  first->GetReflection()->SetString(first, first->GetDescriptor()->FindFieldByName("sku"), "A");
  first->GetReflection()->SetInt64(first, first->GetDescriptor()->FindFieldByName("qty"), 2);
  r->SetInt64(order.get(), d->FindFieldByName("voucher"), 5);
  auto* at = r->MutableMessage(order.get(), d->FindFieldByName("at"));
  at->GetReflection()->SetInt64(at, at->GetDescriptor()->FindFieldByName("seconds"), 1700000000);
  at->GetReflection()->SetInt32(at, at->GetDescriptor()->FindFieldByName("nanos"), 123456000);
  auto* discount = r->MutableMessage(order.get(), d->FindFieldByName("discount"));
  discount->GetReflection()->SetInt64(discount, discount->GetDescriptor()->FindFieldByName("value"), 3);
  r->SetEnumValue(order.get(), d->FindFieldByName("status"), 1);
  std::string payload = order->SerializeAsString();

  auto proto = ProtobufJson::Compile(kProto, {});
  ASSERT_TRUE(proto.ok()) << proto.status().message();
  std::string json;
  ASSERT_TRUE((*proto)->ToJson({1}, payload, &json).ok());
  EXPECT_EQ(json,
            R"({"id":9000000000,"first":{"sku":"A","qty":2},"lines":[],"voucher":5,)"
            R"("at":"2023-11-14 22:13:20.123456+00","discount":3,"status":"PAID","counts":{},"blob":""})");

  auto line = writer.New("shop.Order.Line");
  line->GetReflection()->SetString(line.get(), line->GetDescriptor()->FindFieldByName("sku"), "B");
  json.clear();
  ASSERT_TRUE((*proto)->ToJson({1, 0}, line->SerializeAsString(), &json).ok());  // a nested message
  EXPECT_EQ(json, R"({"sku":"B","qty":0})");
  EXPECT_EQ((*proto)->MessageName({1, 0}), "shop.Order.Line");
  EXPECT_NE((*proto)->ToJson({3}, "", &json).message().find("names no message"), std::string::npos);
  EXPECT_FALSE((*proto)->ToJson({1}, payload.substr(0, payload.size() - 1), &json).ok());
  auto fields = (*proto)->Fields({1});
  ASSERT_GE(fields.size(), 7u);
  EXPECT_EQ(fields[0].column_type, "bigint");
  EXPECT_EQ(fields[5].column_type, "timestamptz");
  EXPECT_EQ(fields[6].column_type, "bigint");  // Int64Value
}

// The direct wire reader must write what reflection writes, byte for byte,
// for every message it reads; and give up (ToJson then answers as
// reflection does) on the rest. Random messages of every field kind, with
// fields repeated, out of order, unknown, packed and not, and now and then
// a wrong wire type or a cut.

const char* kProto2 = R"(syntax = "proto2";
message Old { enum E { A = 1; B = 2; } optional E e = 1; optional int32 n = 2 [default = 7]; repeated E re = 3; }
)";

// One random message of kinds.All (or of Inner, `inner`), as wire bytes.
std::string RandomMessage(std::mt19937& rng, int depth, bool inner) {
  std::string out;
  int fields = static_cast<int>(rng() % 12);
  auto number = [&]() -> uint64_t {
    if (rng() % 20 == 0) return 40 + rng() % 3;  // unknown to the schema
    return inner ? 1 + rng() % 4 : 1 + rng() % 33;
  };
  auto random_value = [&]() -> uint64_t {
    switch (rng() % 4) {
      case 0:
        return rng() % 4;
      case 1:
        return static_cast<uint64_t>(-static_cast<int64_t>(rng() % 300));
      case 2:
        return (static_cast<uint64_t>(rng()) << 32) | rng();
      default:
        return rng() % 100000;
    }
  };
  for (int i = 0; i < fields; ++i) {
    uint64_t n = number();
    // The wire type the field wants, mostly; sometimes any.
    static const int kWire[] = {0, 0, 0, 0, 0, 0, 0, 5, 1, 5, 1, 5, 1, 0, 2, 2, 0,
                                2, 2, 1, 2, 2, 0, 0, 2, 0, 2, 2, 2, 2, 2, 0, 5, 0};
    static const int kInnerWire[] = {0, 2, 0, 0, 2};
    int wire = inner ? kInnerWire[n < 5 ? n : 0] : kWire[n < 34 ? n : 0];
    bool repeated_scalar = !inner && (n == 18 || n == 19 || n == 22 || n == 31 || n == 32 || n == 33);
    if (inner && n == 3) repeated_scalar = true;
    if (repeated_scalar && rng() % 2) wire = 2;  // packed
    if (n >= 40 || rng() % 40 == 0) wire = std::vector<int>{0, 1, 2, 5}[rng() % 4];
    Varint(n << 3 | static_cast<uint64_t>(wire), &out);
    if (wire == 0) {
      Varint(random_value(), &out);
    } else if (wire == 1 || wire == 5) {
      uint64_t v = random_value();
      out.append(reinterpret_cast<const char*>(&v), wire == 1 ? 8 : 4);
    } else {
      std::string body;
      bool message = !inner ? (n == 17 || n == 21 || n == 27 || n == 28 || n == 29 || n == 30) : n == 4;
      if (repeated_scalar) {
        int count = static_cast<int>(rng() % 4);
        for (int k = 0; k < count; ++k) {
          uint64_t v = random_value();
          if (n == 19)
            body.append(reinterpret_cast<const char*>(&v), 8);
          else if (n == 32)
            body.append(reinterpret_cast<const char*>(&v), 4);
          else
            Varint(v, &body);
        }
      } else if (message && depth < 3) {
        if (!inner && n == 28) {  // a Timestamp: seconds, nanos
          Varint(1 << 3, &body), Varint(rng() % 4000000000u, &body);
          if (rng() % 2) Varint(2 << 3, &body), Varint(rng() % 1000000000, &body);
        } else if (!inner && n >= 29) {  // a wrapper: its value
          if (rng() % 4) {
            Varint(n == 29 ? (1 << 3 | 2) : (1 << 3), &body);
            if (n == 29)
              Varint(3, &body), body.append(rng() % 8 ? "a\"b" : "\xff\xfe\x01", 3);
            else
              Varint(random_value(), &body);
          }
        } else {
          body = RandomMessage(rng, depth + 1, true);
        }
      } else {
        static const char* kTexts[] = {"", "x", "h\xc3\xa9llo", "\"q\"\n", "\xc3", "tab\there"};
        body = kTexts[rng() % 6];
      }
      Varint(body.size(), &out);
      out.append(body);
    }
  }
  if (rng() % 30 == 0 && !out.empty()) out.resize(rng() % out.size());  // cut short
  return out;
}

std::string Hex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

TEST(ProtobufJson, DirectReaderWritesWhatReflectionWrites) {
  auto all = ProtobufJson::Compile(kEveryKindProto, {});
  ASSERT_TRUE(all.ok()) << all.status().message();
  auto old = ProtobufJson::Compile(kProto2, {});
  ASSERT_TRUE(old.ok()) << old.status().message();
  std::mt19937 rng(19);
  int decoded = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    bool proto2 = i % 10 == 9;
    std::string payload;
    if (proto2) {
      for (int k = 0, n = static_cast<int>(rng() % 4); k < n; ++k) {
        uint64_t field = 1 + rng() % 3;
        Varint(field << 3, &payload);
        Varint(rng() % 4, &payload);  // 0 and 3 are not values of E: a closed enum keeps them aside
      }
    } else {
      payload = RandomMessage(rng, 0, false);
    }
    ProtobufJson& proto = proto2 ? **old : **all;
    std::string direct, reflected;
    Status a = proto.ToJson({0}, payload, &direct);
    Status b = proto.ToJsonByReflection({0}, payload, &reflected);
    ASSERT_EQ(a.ok(), b.ok()) << i << ": " << a.message() << " / " << b.message() << "; payload "
                              << Hex(payload);
    if (a.ok()) {
      ASSERT_EQ(direct, reflected) << "message " << i << "; payload " << Hex(payload);
      ++decoded;
    } else {
      EXPECT_EQ(a.message(), b.message());
      ++refused;
    }
  }
  EXPECT_GT(decoded, 10000);  // the comparison is mostly of decoded messages
  EXPECT_GT(refused, 100);
}

TEST(RegistryDecoder, ReadsEachRecordWithItsOwnWriterSchema) {
  auto registry = Registry("evolution");
  registry->Preload(
      {1, "AVRO", R"({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]})", {}});
  registry->Preload({2,
                     "AVRO",
                     R"({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"},
                        {"name": "b", "type": ["null", "string"], "default": null}]})",
                     {}});
  registry->Preload({3, "PROTOBUF", "syntax = \"proto3\"; message M { int32 x = 1; }", {}});
  RegistryDecoder decoder(SourceFormat::kAvro, registry);
  std::string v1, v2, json;
  Long(1, &v1);
  Long(2, &v2), Long(1, &v2), Bytes("new", &v2);
  ASSERT_TRUE(decoder.ToJson(WireHeader(1, nullptr) + v1, &json).ok());
  EXPECT_EQ(json, R"({"a":1})");
  ASSERT_TRUE(decoder.ToJson(WireHeader(2, nullptr) + v2, &json).ok());
  EXPECT_EQ(json, R"({"a":2,"b":"new"})");
  EXPECT_NE(decoder.ToJson(WireHeader(3, nullptr) + v1, &json).message().find("is a PROTOBUF schema"),
            std::string::npos);
  // An id it has not got, with the registry down: wait, never a dead letter.
  EXPECT_EQ(decoder.ToJson(WireHeader(4, nullptr) + v1, &json).code(), StatusCode::kUnavailable);
  EXPECT_EQ(decoder.ToJson("{}", &json).code(), StatusCode::kInvalidArgument);
}

TEST(RecordDecoder, AvroValuesAndKeysReadLikeJson) {
  auto registry = Registry("record");
  registry->Preload({11, "AVRO", kOrderSchema, {}});
  registry->Preload({12, "AVRO", R"("string")", {}});
  nlohmann::ordered_json source = nlohmann::ordered_json::parse(
      R"({"format": "avro", "key_format": "avro", "envelope": "upsert",
          "schema_registry": {"url": "http://127.0.0.1:9/record", "connect_timeout_ms": 200}})");
  auto spec = ParseSourceSpec(&source, "source");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  RecordDecoder decoder(*spec, true);
  std::string key = WireHeader(12, nullptr), value = WireHeader(11, nullptr) + OrderDatum();
  Bytes("o-7", &key);
  RawRecord raw;
  raw.topic = "t";
  raw.key = key;
  raw.value = value;
  SourceRecord r;
  Status st = decoder.Decode(raw, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(r.key_text.has_value());
  EXPECT_EQ(*r.key_text, "o-7");
  simdjson::dom::element e;
  FieldRef customer = ParseFieldRef("/customer/id", "x").value();
  ASSERT_TRUE(FindElement(r, customer, &e));
  EXPECT_EQ(std::string_view(e.get_string().value()), "c1");
  raw.value = std::nullopt;  // a tombstone deletes the row its key names
  ASSERT_TRUE(decoder.Decode(raw, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kDelete);
  EXPECT_EQ(*r.key_text, "o-7");
}

// source.key_format protobuf: a message key (here with a nested message
// index) reads as JSON: $key is its JSON text, $key/ptr a field of it; a
// key that does not decode is a bad record whose reason says "key".
TEST(RecordDecoder, ProtobufKeysReadLikeJsonKeys) {
  auto registry = Registry("protobuf-keys");
  registry->Preload({21,
                     "PROTOBUF",
                     R"(syntax = "proto3";
package keys;
message Other { string x = 1; }
message Outer { message Key { string id = 1; int32 region = 2; } })",
                     {}});
  registry->Preload({22, "PROTOBUF", "syntax = \"proto3\"; message V { int64 qty = 1; }", {}});
  RecordDecoder decoder(Spec(R"({"format": "protobuf", "key_format": "protobuf", "envelope": "upsert",
      "schema_registry": {"url": "http://127.0.0.1:9/protobuf-keys", "connect_timeout_ms": 200}})"),
                        true);
  const std::vector<int32_t> key_type = {1, 0}, value_type = {0};                       // keys.Outer.Key; V
  std::string key = WireHeader(21, &key_type) + std::string("\x0a\x03o-7\x10\x03", 7);  // id "o-7", region 3
  std::string value = WireHeader(22, &value_type) + std::string("\x08\x05", 2);         // qty 5
  RawRecord raw = Raw(key, value);
  SourceRecord r;
  Status st = decoder.Decode(raw, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(r.key_text.has_value());
  EXPECT_EQ(*r.key_text, R"({"id":"o-7","region":3})");
  EXPECT_EQ(At(r, "$key/id"), "\"o-7\"");
  EXPECT_EQ(At(r, "$key/region"), "3");
  EXPECT_EQ(At(r, "/qty"), "5");
  // A tombstone deletes the row its key names.
  raw.value = std::nullopt;
  ASSERT_TRUE(decoder.Decode(raw, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kDelete);
  EXPECT_EQ(*r.key_text, R"({"id":"o-7","region":3})");
  // A key in plain text where the wire format is expected: a bad record.
  st = decoder.Decode(Raw("o-7", value), &r);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message().rfind("key: ", 0), 0u) << st.message();
}

// An Avro record as the key: $key/ptr reads into it.
TEST(RecordDecoder, AvroRecordKeysReadByPointer) {
  auto registry = Registry("avro-record-keys");
  registry->Preload({31,
                     "AVRO",
                     R"({"type": "record", "name": "K", "fields": [
      {"name": "tenant", "type": "string"}, {"name": "n", "type": "long"}]})",
                     {}});
  RecordDecoder decoder(Spec(R"({"format": "json", "key_format": "avro", "envelope": "upsert",
      "schema_registry": {"url": "http://127.0.0.1:9/avro-record-keys", "connect_timeout_ms": 200}})"),
                        true);
  std::string key = WireHeader(31, nullptr);
  Bytes("acme", &key);
  Long(42, &key);
  SourceRecord r;
  Status st = decoder.Decode(Raw(key, R"({"qty": 1})"), &r);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(*r.key_text, R"({"tenant":"acme","n":42})");
  EXPECT_EQ(At(r, "$key/tenant"), "\"acme\"");
  EXPECT_EQ(At(r, "$key/n"), "42");
}

}  // namespace
}  // namespace freshet
