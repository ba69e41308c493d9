// The producer and consumer wrappers against the real broker: what a
// read_committed consumer sees, and fencing through transactional.id.

#include <gtest/gtest.h>

#include "core/kafka.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using testing::KafkaOptions;
using testing::ReadAll;
using testing::UniqueName;

std::unique_ptr<TransactionalProducer> MakeProducer(const std::string& txn_id) {
  auto p = TransactionalProducer::Create(KafkaOptions(), txn_id);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  Status st = (*p)->InitTransactions(30s);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return std::move(p.value());
}

OutgoingMessage Msg(const std::string& topic, const std::string& value) {
  return OutgoingMessage{topic, 0, "k", value, {{"freshet.type", "Test"}}};
}

class KafkaTransactions : public testing::IntegrationFixture {
 protected:
  KafkaTransactions() : IntegrationFixture("txn") {}

  void SetUp() override { ASSERT_TRUE(CreateTopic(topic_, 1)); }
};

TEST_F(KafkaTransactions, CommittedIsSeenAndAbortedNever) {
  auto producer = MakeProducer(UniqueName("tid"));
  std::vector<DeliveryReport> reports(3);
  ASSERT_TRUE(producer->Begin().ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(producer->Produce(Msg(topic_, "committed-" + std::to_string(i)), &reports[i]).ok());
  ASSERT_TRUE(producer->Commit(30s).ok());
  for (const auto& r : reports) EXPECT_GE(r.offset, 0) << "commit returned before the delivery report";

  ASSERT_TRUE(producer->Begin().ok());
  ASSERT_TRUE(producer->Produce(Msg(topic_, "aborted-0"), nullptr).ok());
  ASSERT_TRUE(producer->Produce(Msg(topic_, "aborted-1"), nullptr).ok());
  ASSERT_TRUE(producer->Abort(30s).ok());

  ASSERT_TRUE(producer->Begin().ok());
  ASSERT_TRUE(producer->Produce(Msg(topic_, "committed-3"), nullptr).ok());
  ASSERT_TRUE(producer->Commit(30s).ok());

  auto records = ReadAll(topic_, 1);
  std::vector<std::string> values;
  for (const auto& r : records) values.push_back(r.value);
  EXPECT_EQ(values, (std::vector<std::string>{"committed-0", "committed-1", "committed-2", "committed-3"}));
  // Offsets are not contiguous: commit and abort markers take offsets too.
  EXPECT_GT(records.back().offset, 3);
}

TEST_F(KafkaTransactions, SecondProducerWithSameIdFencesTheFirst) {
  std::string tid = UniqueName("tid");
  auto first = MakeProducer(tid);
  ASSERT_TRUE(first->Begin().ok());
  ASSERT_TRUE(first->Produce(Msg(topic_, "from-zombie"), nullptr).ok());

  auto second = MakeProducer(tid);  // fences `first`, aborting its open transaction
  Status st = first->Commit(30s);
  EXPECT_EQ(st.code(), StatusCode::kFenced) << st.ToString();

  ASSERT_TRUE(second->Begin().ok());
  ASSERT_TRUE(second->Produce(Msg(topic_, "from-new-owner"), nullptr).ok());
  ASSERT_TRUE(second->Commit(30s).ok());

  auto records = ReadAll(topic_, 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].value, "from-new-owner");
}

TEST_F(KafkaTransactions, FencedWhileIdleFailsAtCommit) {
  std::string tid = UniqueName("tid");
  auto first = MakeProducer(tid);
  auto second = MakeProducer(tid);
  // librdkafka does not know it is fenced until it talks to the coordinator.
  Status begin = first->Begin();
  Status produce = begin.ok() ? first->Produce(Msg(topic_, "zombie"), nullptr) : begin;
  Status commit = produce.ok() ? first->Commit(30s) : produce;
  EXPECT_EQ(commit.code(), StatusCode::kFenced) << commit.ToString();
  EXPECT_TRUE(ReadAll(topic_, 1).empty());
}

TEST(KafkaAdmin, EnsureTopicIsIdempotentAndCountsPartitions) {
  std::string topic = UniqueName("admin");
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), topic, 3, 1, 30s).ok());
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), topic, 3, 1, 30s).ok());
  auto count = PartitionCount(KafkaOptions(), topic, 10s);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 3);
  EXPECT_EQ(PartitionCount(KafkaOptions(), UniqueName("missing"), 10s).status().code(),
            StatusCode::kNotFound);
}

TEST(KafkaAdmin, UnreachableBrokerIsAClearError) {
  KafkaClientOptions bad{"127.0.0.1:1", {}};
  auto count = PartitionCount(bad, "x", 2s);
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("127.0.0.1:1"), std::string::npos) << count.status().message();
}

TEST(KafkaAdmin, DeleteTopicsRemovesThemAndIgnoresMissingOnes) {
  std::string topic = UniqueName("to-delete");
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), topic, 2, 1, 30s).ok());
  ASSERT_TRUE(PartitionCount(KafkaOptions(), topic, 10s).ok());

  Status st = DeleteTopics(KafkaOptions(), {topic, UniqueName("never-made")}, 30s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  bool gone = testing::WaitUntil(
      [&] {
        auto count = PartitionCount(KafkaOptions(), topic, 10s);
        return !count.ok() && count.status().code() == StatusCode::kNotFound;
      },
      30s, 50ms);
  EXPECT_TRUE(gone) << "topic " << topic << " is still in the metadata";
}

}  // namespace
}  // namespace freshet
