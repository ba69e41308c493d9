// SlotEnv: the one seam between a writer's partition slot and the world
// outside its process, as EngineEnv (views/engine_env.h) is for a view
// engine: the tail consumer the slot reads its partition with, the
// transactional producers it fences and commits with, where its snapshots
// come from, and the clock its linger and timings read.
//
// Production uses KafkaSlotEnv() (librdkafka). Unit tests drive a slot
// against an in-memory partition log with transactions and fencing
// (tests/writer/partition_slot_test.cpp) to show the slot's own logic:
// batching, idempotency, what each commit failure leads to, takeovers.
// Whether Kafka itself fences, aborts and hides uncommitted records as the
// slot expects is the integration and chaos tests' job, on a real broker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/kafka.h"
#include "core/status.h"
#include "writer/partition_snapshot.h"

namespace freshet {

// The producer calls a slot makes (see TransactionalProducer in
// core/kafka.h for what each means). kFenced from any of them is final.
class SlotProducer {
 public:
  virtual ~SlotProducer() = default;
  virtual Status InitTransactions(std::chrono::milliseconds timeout) = 0;
  virtual Status Begin() = 0;
  virtual Status Produce(const OutgoingMessage& message, DeliveryReport* report) = 0;
  virtual Status Flush(std::chrono::milliseconds timeout) = 0;
  virtual Status Commit(std::chrono::milliseconds timeout) = 0;
  virtual Status Abort(std::chrono::milliseconds timeout) = 0;
};

// One committed record of the slot's partition. `value` views the record's
// bytes until the next Poll. With kPartitionEnd, `offset` is where the
// fetch saw the end (its last stable offset) and `value` is empty.
struct TailRecord {
  int64_t offset = -1;
  std::string_view value;
};

// The read_committed consumer a slot tails its partition with (see Consumer
// in core/kafka.h), assigned to that one partition, no group.
class SlotTail {
 public:
  virtual ~SlotTail() = default;
  virtual Status Assign(const std::string& topic, int32_t partition, int64_t offset) = 0;
  // kPartitionEnd once each time the tail reaches the last stable offset.
  virtual Result<Consumer::PollOutcome> Poll(std::chrono::milliseconds timeout, TailRecord* record) = 0;
  virtual Status Seek(const std::string& topic, int32_t partition, int64_t offset) = 0;
  virtual Status Pause(const std::string& topic, int32_t partition) = 0;
  virtual Status Resume(const std::string& topic, int32_t partition) = 0;
  // The partition's log start and end (high watermark).
  virtual Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& topic, int32_t partition,
                                                              std::chrono::milliseconds timeout) = 0;
  virtual Status Close() = 0;
};

class SlotEnv {
 public:
  virtual ~SlotEnv() = default;
  virtual Result<std::unique_ptr<SlotTail>> NewTail(const KafkaClientOptions& options) = 0;
  // `topics`: those it will produce to (their metadata is fetched at once).
  virtual Result<std::unique_ptr<SlotProducer>> NewProducer(const KafkaClientOptions& options,
                                                            const std::string& transactional_id,
                                                            const std::vector<std::string>& topics) = 0;
  // The newest snapshot of `partition` that committed whole (see
  // LoadLatestSnapshot in writer/partition_snapshot.h).
  virtual Result<std::optional<PartitionSnapshot>> LoadLatestSnapshot(const KafkaClientOptions& options,
                                                                      const std::string& snapshot_topic,
                                                                      int32_t partition,
                                                                      std::chrono::milliseconds timeout) = 0;
  virtual const Clock& clock() const = 0;
};

// librdkafka and the system's clocks.
SlotEnv& KafkaSlotEnv();

}  // namespace freshet
