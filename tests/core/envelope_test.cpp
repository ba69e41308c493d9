#include "core/envelope.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <limits>
#include <memory>
#include <random>

namespace freshet {
namespace {

TEST(Envelope, RoundTrips) {
  Event e{"StockSold", "cmd-1", 1700000000123, {{"store", "s1"}, {"qty", 2}}};
  auto back = DecodeEventValue(EncodeEventValue(e));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->type, "StockSold");
  EXPECT_EQ(back->id, "cmd-1");
  EXPECT_EQ(back->ts_ms, 1700000000123);
  EXPECT_EQ(back->data["qty"], 2);
}

// The value is written by hand on the writer's hot path; views and other
// consumers may compare it byte for byte, so it must be what the JSON
// library itself writes, whatever the data holds.
TEST(Envelope, EncodesExactlyAsTheJsonLibraryDumps) {
  nlohmann::json data = {{"store", "s\"1\\ \b\f\n\r\t\x01\x1f\x7f é 日本"},
                         {"qty", -2},
                         {"big", std::numeric_limits<uint64_t>::max()},
                         {"min", std::numeric_limits<int64_t>::min()},
                         {"price", 12.5},
                         {"ratio", 0.1},
                         {"huge", 1e300},
                         {"flag", true},
                         {"off", false},
                         {"none", nullptr},
                         {"empty", nlohmann::json::object()},
                         {"list", {1, "two", nlohmann::json::array(), {{"k", 3.0}}}},
                         {"", "empty key"}};
  Event e{"StockSold\u00e9", "id \"quoted\"", 1700000000123, data};
  nlohmann::json envelope = {{"type", e.type}, {"id", e.id}, {"ts", e.ts_ms}, {"data", e.data}};
  // The envelope's own fields come in a fixed order, not the library's.
  std::string expected = "{\"type\":" + nlohmann::json(e.type).dump() +
                         ",\"id\":" + nlohmann::json(e.id).dump() +
                         ",\"ts\":1700000000123,\"data\":" + data.dump() + "}";
  EXPECT_EQ(EncodeEventValue(e), expected);
  EXPECT_EQ(nlohmann::json::parse(EncodeEventValue(e)), envelope);

  Event not_utf8{"X", "\xff\xfe", 1, nlohmann::json::object()};
  EXPECT_THROW(EncodeEventValue(not_utf8), nlohmann::json::exception);  // as dump() throws
}

TEST(Envelope, DecodeNamesTheBadField) {
  EXPECT_NE(DecodeEventValue("not json").status().message().find("not valid JSON"), std::string::npos);
  EXPECT_NE(DecodeEventValue(R"({"data": {}})").status().message().find("event.type"), std::string::npos);
  EXPECT_NE(DecodeEventValue(R"({"type": "X", "data": 3})").status().message().find("event.data"),
            std::string::npos);
  EXPECT_NE(DecodeEventValue(R"({"type": "X", "ts": "now", "data": {}})").status().message().find("event.ts"),
            std::string::npos);
}

// The writer computes partitions itself; it must agree with librdkafka's
// murmur2 partitioner (and so with Kafka's Java clients) for every key.
TEST(PartitionForKey, MatchesLibrdkafkaMurmur2) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err));
  std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> rk(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)), &rd_kafka_destroy);
  ASSERT_TRUE(rk);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), "t", nullptr);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string key = "store-" + std::to_string(rng() % 100000) + std::string(i % 7, 'x');
    for (int32_t n : {1, 3, 4, 8, 12, 64}) {
      int32_t expected = rd_kafka_msg_partitioner_murmur2(rkt, key.data(), key.size(), n, nullptr, nullptr);
      ASSERT_EQ(PartitionForKey(key, n), expected) << key << " over " << n;
    }
  }
  rd_kafka_topic_destroy(rkt);
}

}  // namespace
}  // namespace freshet
