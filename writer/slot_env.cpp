#include "writer/slot_env.h"

#include <spdlog/spdlog.h>

namespace freshet {

namespace {

class KafkaSlotProducer final : public SlotProducer {
 public:
  explicit KafkaSlotProducer(std::unique_ptr<TransactionalProducer> producer)
      : producer_(std::move(producer)) {}

  Status InitTransactions(std::chrono::milliseconds timeout) override {
    return producer_->InitTransactions(timeout);
  }
  Status Begin() override { return producer_->Begin(); }
  Status Produce(const OutgoingMessage& message, DeliveryReport* report) override {
    return producer_->Produce(message, report);
  }
  Status Flush(std::chrono::milliseconds timeout) override { return producer_->Flush(timeout); }
  Status Commit(std::chrono::milliseconds timeout) override { return producer_->Commit(timeout); }
  Status Abort(std::chrono::milliseconds timeout) override { return producer_->Abort(timeout); }

 private:
  std::unique_ptr<TransactionalProducer> producer_;
};

class KafkaSlotTail final : public SlotTail {
 public:
  explicit KafkaSlotTail(std::unique_ptr<Consumer> consumer) : consumer_(std::move(consumer)) {}

  Status Assign(const std::string& topic, int32_t partition, int64_t offset) override {
    return consumer_->Assign({{topic, partition, offset}});
  }
  Result<Consumer::PollOutcome> Poll(std::chrono::milliseconds timeout, TailRecord* record) override {
    // The record views this message's bytes: it is kept until the next Poll.
    message_ = KafkaMessage();
    int64_t end = -1;
    auto outcome = consumer_->Poll(timeout, &message_, nullptr, &end);
    if (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage)
      *record = TailRecord{message_.offset(), message_.value()};
    if (outcome.ok() && *outcome == Consumer::PollOutcome::kPartitionEnd) *record = TailRecord{end, {}};
    return outcome;
  }
  Status Seek(const std::string& topic, int32_t partition, int64_t offset) override {
    return consumer_->Seek(topic, partition, offset);
  }
  Status Pause(const std::string& topic, int32_t partition) override {
    return consumer_->Pause({{topic, partition, 0}});
  }
  Status Resume(const std::string& topic, int32_t partition) override {
    return consumer_->Resume({{topic, partition, 0}});
  }
  Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& topic, int32_t partition,
                                                      std::chrono::milliseconds timeout) override {
    return consumer_->QueryWatermarks(topic, partition, timeout);
  }
  Status Close() override { return consumer_->Close(); }

 private:
  std::unique_ptr<Consumer> consumer_;
  KafkaMessage message_;
};

class KafkaSlotEnvImpl final : public SlotEnv {
 public:
  Result<std::unique_ptr<SlotTail>> NewTail(const KafkaClientOptions& options) override {
    auto consumer = Consumer::Create(options, "");
    if (!consumer.ok()) return consumer.status();
    return std::unique_ptr<SlotTail>(std::make_unique<KafkaSlotTail>(std::move(consumer.value())));
  }
  Result<std::unique_ptr<SlotProducer>> NewProducer(const KafkaClientOptions& options,
                                                    const std::string& transactional_id,
                                                    const std::vector<std::string>& topics) override {
    auto producer = TransactionalProducer::Create(options, transactional_id);
    if (!producer.ok()) return producer.status();
    // Not fatal: the first message to a topic then looks it up itself.
    if (Status learned = (*producer)->LearnTopics(topics, std::chrono::seconds(5)); !learned.ok())
      spdlog::warn("producer {}: {}", transactional_id, learned.message());
    return std::unique_ptr<SlotProducer>(std::make_unique<KafkaSlotProducer>(std::move(producer.value())));
  }
  Result<std::optional<PartitionSnapshot>> LoadLatestSnapshot(const KafkaClientOptions& options,
                                                              const std::string& snapshot_topic,
                                                              int32_t partition,
                                                              std::chrono::milliseconds timeout) override {
    return freshet::LoadLatestSnapshot(options, snapshot_topic, partition, timeout);
  }
  const Clock& clock() const override { return SystemClock(); }
};

}  // namespace

SlotEnv& KafkaSlotEnv() {
  static KafkaSlotEnvImpl env;
  return env;
}

}  // namespace freshet
