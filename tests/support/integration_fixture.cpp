#include "tests/support/integration_fixture.h"

#include <chrono>
#include <fstream>

namespace freshet::testing {

IntegrationFixture::IntegrationFixture(const std::string& prefix)
    : prefix_(prefix),
      topic_(UniqueName(prefix)),
      views_group_(UniqueName(prefix + "-views")),
      port_(FreePort()) {}

::testing::AssertionResult IntegrationFixture::CreateTopicAndDatabase(int partitions) {
  if (auto created = CreateTopic(topic_, partitions); !created) return created;
  CreateDatabase();
  return ::testing::AssertionSuccess();
}

void IntegrationFixture::CreateDatabase() {
  db_url_ = CreateTestDatabase(prefix_);
  env_ = ViewsEnv();
}

::testing::AssertionResult IntegrationFixture::CreateTopic(const std::string& topic, int partitions) {
  Status st = EnsureTopic(KafkaOptions(), topic, partitions, 1, std::chrono::seconds(30));
  if (st.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "topic " << topic << ": " << st.ToString();
}

std::string IntegrationFixture::TestFile(const std::string& suffix) const {
  return std::string(TestLogDir()) + "/" + topic_ + suffix;
}

std::string IntegrationFixture::WriteViewsConfig(const std::string& definitions,
                                                 const std::string& suffix) const {
  std::string path = TestFile(suffix);
  std::ofstream(path) << R"({"views": {"definitions": )" << definitions << "}}";
  return path;
}

std::map<std::string, std::string> IntegrationFixture::ViewsEnv() const {
  return {{"FRESHET_KAFKA_BROKERS", KafkaBrokers()},
          {"FRESHET_KAFKA_TOPIC", topic_},
          {"FRESHET_POSTGRES_URL", db_url_},
          {"FRESHET_VIEWS_GROUP_ID", views_group_},
          {"FRESHET_VIEWS_LISTEN", Loopback(port_)}};
}

std::map<std::string, std::string> IntegrationFixture::WriterEnv(const std::string& instance, int port,
                                                                 int partitions) const {
  return {{"FRESHET_KAFKA_BROKERS", KafkaBrokers()},
          {"FRESHET_KAFKA_TOPIC", topic_},
          {"FRESHET_KAFKA_PARTITIONS", std::to_string(partitions)},
          {"FRESHET_WRITER_LISTEN", Loopback(port)},
          {"FRESHET_WRITER_INSTANCE_ID", instance},
          {"FRESHET_WRITER_OWNERS_TOPIC", topic_ + "-owners"},
          {"FRESHET_WRITER_SESSION_TIMEOUT_MS", "3000"}};
}

std::string IntegrationFixture::Loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace freshet::testing
