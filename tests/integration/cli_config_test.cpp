// Config errors through the real binary: a message that names the field and
// a non-zero exit, before anything is started.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

std::string WriteConfig(const std::string& text) {
  std::string path = std::string(FRESHET_TEST_LOG_DIR) + "/" + UniqueName("config") + ".json";
  std::ofstream(path) << text;
  return path;
}

TEST(CliConfig, UnknownKeyIsNamed) {
  auto r = RunFreshet(
      {"writer", "--config", WriteConfig(R"({"kafka": {"brokers": "127.0.0.1:19092", "topik": "x"}})")}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("kafka.topik: unknown key"), std::string::npos) << r.output;
}

TEST(CliConfig, BadTypeIsNamed) {
  auto r = RunFreshet({"views", "--config", WriteConfig(R"({"views": {"flush_interval_ms": "fast"}})")}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("views.flush_interval_ms: expected an integer"), std::string::npos) << r.output;
}

TEST(CliConfig, MissingBrokerIsNamed) {
  auto r = RunFreshet({"writer", "--config", WriteConfig("{ /* nothing */ }")}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("kafka.brokers: required"), std::string::npos) << r.output;
}

TEST(CliConfig, MissingPostgresUrlIsNamedForViews) {
  auto r = RunFreshet({"views"}, {{"FRESHET_KAFKA_BROKERS", KafkaBrokers()}});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("postgres.url: required"), std::string::npos) << r.output;
}

TEST(CliConfig, UnreachableBrokerFailsWithTheAddress) {
  auto r = RunFreshet(
      {"writer"}, {{"FRESHET_KAFKA_BROKERS", "127.0.0.1:1"}, {"FRESHET_WRITER_LISTEN", "127.0.0.1:0"}}, 60s);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("127.0.0.1:1"), std::string::npos) << r.output;
}

TEST(CliConfig, MissingConfigFileIsNamed) {
  auto r = RunFreshet({"writer", "--config", "/nonexistent/freshet.json"}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/freshet.json"), std::string::npos) << r.output;
}

TEST(CliConfig, HelpListsSubcommands) {
  auto r = RunFreshet({"--help"}, {});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"writer", "views", "check-config", "demo-load"})
    EXPECT_NE(r.output.find(sub), std::string::npos) << sub;
}

}  // namespace
}  // namespace freshet
