// The start every integration test shares: names of its own (topic,
// database, consumer group, files) so tests never see each other's data, the
// views config file, and the FRESHET_* environment of the `freshet views` or
// `freshet writer` children it runs. A test fixture derives from
// IntegrationFixture, names its prefix, and adds only what is its own.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/support/test_env.h"

namespace freshet::testing {

class IntegrationFixture : public ::testing::Test {
 protected:
  // `prefix` begins every name the test makes, so a leftover topic or
  // database says which test made it. Picks topic_, views_group_ and port_;
  // creates nothing.
  explicit IntegrationFixture(const std::string& prefix);

  // The usual start of a view test: topic_ with `partitions` partitions, a
  // fresh database in db_url_, and env_ = ViewsEnv(). Call it as
  // ASSERT_TRUE(CreateTopicAndDatabase(n)) so that a failure ends SetUp.
  ::testing::AssertionResult CreateTopicAndDatabase(int partitions);
  // The same without the topic, for tests whose writer creates topic_ (as
  // it would in production) or whose views name their own topics.
  void CreateDatabase();

  // `topic` with `partitions` partitions (replication 1) on the suite's
  // broker; idempotent. The failure names the topic and the broker's error.
  static ::testing::AssertionResult CreateTopic(const std::string& topic, int partitions);

  // <TestLogDir()>/<topic_><suffix>: where the test's configs and RocksDB
  // folders go, beside its logs.
  std::string TestFile(const std::string& suffix) const;

  // Writes {"views": {"definitions": DEFINITIONS}} to TestFile(suffix) and
  // returns its path. The same suffix rewrites the same file: a test that
  // changes its definitions calls this again.
  std::string WriteViewsConfig(const std::string& definitions, const std::string& suffix = ".json") const;

  // A `freshet views` child of this test: the suite's broker, topic_,
  // db_url_, the consumer group views_group_, listening on port_. Tests add
  // their own settings (flush interval, RocksDB path, ...).
  std::map<std::string, std::string> ViewsEnv() const;

  // Writer instance `instance` of a group on topic_ with `partitions`
  // partitions, listening on `port`; the group shares topic_-owners and a
  // 3 s session timeout (a takeover within seconds).
  std::map<std::string, std::string> WriterEnv(const std::string& instance, int port, int partitions) const;

  // "127.0.0.1:<port>", the form of every *_LISTEN setting.
  static std::string Loopback(int port);

  std::string prefix_;
  std::string topic_;
  std::string views_group_;
  std::string db_url_;                      // set by CreateDatabase
  int port_ = 0;                            // the views' HTTP port in ViewsEnv()
  std::map<std::string, std::string> env_;  // ViewsEnv(), set by CreateDatabase; tests add to it
};

}  // namespace freshet::testing
