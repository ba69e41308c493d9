#include "core/config.h"

#include <gtest/gtest.h>

namespace freshet {
namespace {

const std::map<std::string, std::string> kNoEnv;

TEST(Config, AcceptsCommentsAndKeepsDefaults) {
  auto c = ParseConfig(R"({
    // where the broker is
    "kafka": {"brokers": "127.0.0.1:9092", "partitions": 8}, /* inline */
    "writer": {"linger_ms": 7}
  })",
                       "test.json", kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kafka.brokers, "127.0.0.1:9092");
  EXPECT_EQ(c->kafka.partitions, 8);
  EXPECT_EQ(c->kafka.topic, "inventory");
  EXPECT_EQ(c->writer.linger_ms, 7);
  EXPECT_EQ(c->views.flush_interval_ms, 100);
}

TEST(Config, EnvironmentOverridesTheFile) {
  auto c = ParseConfig(
      R"({"kafka": {"brokers": "a:1", "partitions": 2}})", "test.json",
      {{"FRESHET_KAFKA_BROKERS", "b:2"}, {"FRESHET_KAFKA_PARTITIONS", "6"}, {"FRESHET_VIEWS_GROUP_ID", "g"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kafka.brokers, "b:2");
  EXPECT_EQ(c->kafka.partitions, 6);
  EXPECT_EQ(c->views.group_id, "g");
}

TEST(Config, UnknownKeyIsNamed) {
  auto c = ParseConfig(R"({"kafka": {"brokrs": "a:1"}})", "test.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("kafka.brokrs: unknown key"), std::string::npos)
      << c.status().message();
}

TEST(Config, UnknownTopLevelKeyIsNamed) {
  auto c = ParseConfig(R"({"wrtier": {}})", "test.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("wrtier: unknown key"), std::string::npos) << c.status().message();
}

TEST(Config, WrongTypeIsNamed) {
  auto c = ParseConfig(R"({"kafka": {"partitions": "four"}})", "test.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("kafka.partitions: expected an integer"), std::string::npos)
      << c.status().message();
}

TEST(Config, BadEnvironmentValueNamesTheVariable) {
  auto c = ParseConfig("{}", "test.json", {{"FRESHET_WRITER_LINGER_MS", "soon"}});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("FRESHET_WRITER_LINGER_MS"), std::string::npos) << c.status().message();
}

TEST(Config, OutOfRangeIsRefused) {
  auto c = ParseConfig(R"({"kafka": {"partitions": 0}})", "test.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("kafka.partitions"), std::string::npos);
}

TEST(Config, InvalidJsonSaysWhere) {
  auto c = ParseConfig("{\"kafka\": }", "bad.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.json: not valid JSON"), std::string::npos) << c.status().message();
}

TEST(Config, MissingBrokersIsReportedByRequireField) {
  auto c = ParseConfig("{}", "test.json", kNoEnv);
  ASSERT_TRUE(c.ok());
  Status st = RequireField(c->kafka.brokers, "kafka.brokers");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("kafka.brokers: required"), std::string::npos);
  EXPECT_NE(st.message().find("FRESHET_KAFKA_BROKERS"), std::string::npos);
}

TEST(Config, BadLogLevelIsRefused) {
  auto c = ParseConfig(R"({"log_level": "loud"})", "test.json", kNoEnv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("log_level"), std::string::npos);
}

}  // namespace
}  // namespace freshet
