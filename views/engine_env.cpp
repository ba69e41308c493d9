#include "views/engine_env.h"

namespace freshet {

namespace {

class KafkaSourceConsumer final : public SourceConsumer {
 public:
  explicit KafkaSourceConsumer(std::unique_ptr<Consumer> consumer) : consumer_(std::move(consumer)) {}

  Status Subscribe(const std::string& topic, AssignHook on_assign, RevokeHook on_revoke) override {
    return consumer_->Subscribe({topic}, std::move(on_assign), std::move(on_revoke));
  }
  Result<Consumer::PollOutcome> Poll(std::chrono::milliseconds timeout, RawRecord* record,
                                     int32_t* eof_partition) override {
    // The record views this message's bytes: it is kept until the next Poll.
    message_ = KafkaMessage();
    auto outcome = consumer_->Poll(timeout, &message_, eof_partition);
    if (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage) *record = RawRecord::From(message_);
    return outcome;
  }
  Status Seek(const std::string& topic, int32_t partition, int64_t offset) override {
    return consumer_->Seek(topic, partition, offset);
  }
  Status CommitOffsets(const std::string& topic, const std::map<int32_t, int64_t>& next_offsets) override {
    return consumer_->CommitOffsets(topic, next_offsets);
  }
  Result<std::map<int32_t, int64_t>> CommittedOffsets(const std::string& topic,
                                                      const std::vector<int32_t>& partitions,
                                                      std::chrono::milliseconds timeout) override {
    return consumer_->CommittedOffsets(topic, partitions, timeout);
  }
  Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& topic, int32_t partition,
                                                      std::chrono::milliseconds timeout) override {
    return consumer_->QueryWatermarks(topic, partition, timeout);
  }
  int64_t CachedHighWatermark(const std::string& topic, int32_t partition) override {
    return consumer_->CachedHighWatermark(topic, partition);
  }
  Result<int> PartitionCount(const std::string& topic, std::chrono::milliseconds timeout) override {
    return consumer_->PartitionCount(topic, timeout);
  }
  bool assignment_failed() const override { return consumer_->assignment_failed(); }
  Status Close() override { return consumer_->Close(); }

 private:
  std::unique_ptr<Consumer> consumer_;
  KafkaMessage message_;
};

class KafkaEnv final : public EngineEnv {
 public:
  Result<std::unique_ptr<SourceConsumer>> NewConsumer(const KafkaClientOptions& options,
                                                      const std::string& group_id) override {
    auto consumer = Consumer::Create(options, group_id);
    if (!consumer.ok()) return consumer.status();
    return std::unique_ptr<SourceConsumer>(
        std::make_unique<KafkaSourceConsumer>(std::move(consumer.value())));
  }
  const Clock& clock() const override { return SystemClock(); }
};

class ProducerDeadLetters final : public DeadLetterSink {
 public:
  explicit ProducerDeadLetters(std::unique_ptr<Producer> producer) : producer_(std::move(producer)) {}
  Status Produce(const OutgoingMessage& message) override { return producer_->Produce(message); }
  Status Flush(std::chrono::milliseconds timeout) override { return producer_->Flush(timeout); }

 private:
  std::unique_ptr<Producer> producer_;
};

}  // namespace

EngineEnv& KafkaEngineEnv() {
  static KafkaEnv env;
  return env;
}

std::unique_ptr<DeadLetterSink> KafkaDeadLetters(std::unique_ptr<Producer> producer) {
  return std::make_unique<ProducerDeadLetters>(std::move(producer));
}

}  // namespace freshet
