// What `freshet inspect` guesses from a sample, without a broker.
#include "sources/topic_inspector.h"

#include <gtest/gtest.h>

#include "views/view_spec.h"

namespace freshet {
namespace {

SampleRecord Record(std::optional<std::string> key, std::optional<std::string> value) {
  return SampleRecord{0, 0, std::move(key), std::move(value)};
}

TEST(TopicInspector, RecognisesFreshetsEnvelopeAndKeysEventsByPosition) {
  Inspection in =
      InspectSample({Record("s1", R"({"type": "StockSold", "ts": 1, "data": {"qty": 2, "sku": "A"}})")},
                    "events", "events");
  EXPECT_EQ(in.format, "freshet");
  ASSERT_FALSE(in.definition.is_null());
  EXPECT_EQ(in.definition["key"]["offset"]["from"], "$offset");
  EXPECT_EQ(in.definition["columns"]["qty"]["type"], "bigint");
  EXPECT_FALSE(in.definition["source"].contains("format")) << "freshet is the default";
}

TEST(TopicInspector, TombstonesAndRepeatedKeysMeanUpsert) {
  Inspection in = InspectSample(
      {Record("a",
              R"({"n": 1, "when": "2024-01-01T00:00:00Z", "id": "123e4567-e89b-12d3-a456-426614174000"})"),
       Record("a", std::nullopt), Record("b", R"({"n": 2.5, "when": "2024-01-02 10:00:00"})")},
      "t", "Weird-Name");
  EXPECT_EQ(in.envelope, "upsert");
  EXPECT_EQ(in.definition["name"], "weird_name");
  EXPECT_EQ(in.definition["key"]["key"]["from"], "$key");
  EXPECT_EQ(in.definition["columns"]["n"]["type"], "double");
  EXPECT_EQ(in.definition["columns"]["when"]["type"], "timestamptz");
  EXPECT_EQ(in.definition["columns"]["id"]["type"], "uuid");
  // What it prints parses as a definition.
  EXPECT_TRUE(ParseViewSpecs(nlohmann::ordered_json::array({in.definition}), "d").ok());
}

TEST(TopicInspector, SaysWhySchemaRegistryRecordsAreNotSupported) {
  std::string avro("\0\0\0\0\x07\x02\x06abc", 9);
  Inspection in = InspectSample({Record("k", avro)}, "t", "t");
  EXPECT_EQ(in.format, "unsupported");
  EXPECT_NE(in.why.find("schema id 7"), std::string::npos) << in.why;
  EXPECT_TRUE(in.definition.is_null());
}

TEST(TopicInspector, ColumnNamesBecomeIdentifiers) {
  EXPECT_EQ(IdentifierFor("Order-ID"), "order_id");
  EXPECT_EQ(IdentifierFor("2fa"), "_2fa");
  EXPECT_EQ(IdentifierFor(""), "_");
}

}  // namespace
}  // namespace freshet
