// PartitionOwner: the single, serializable owner of one partition's state.
//
// One thread per owned partition. It fences any earlier owner (init_transactions
// with the partition's stable transactional.id), rebuilds the state by reading
// the partition to its end (read_committed), then serves commands one batch at
// a time: decide each command in order against committed + pending state,
// publish the batch's events in ONE Kafka transaction, and only after the
// commit succeeds make the pending state current and answer the commands.
// Nothing is acknowledged that is not committed; a fenced owner stops at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/kafka.h"
#include "core/metrics.h"
#include "writer/decider.h"

namespace freshet {

// What an accepted command produced: the position of its last event (or of
// the state it was decided against, when it produced none).
struct CommandAck {
  int32_t partition = -1;
  int64_t offset = -1;
};

// Called once per command, from the owner's thread. A refusal comes as
// StatusCode::kRefused; kUnavailable means "not committed, safe to retry".
using CommandDone = std::function<void(Result<CommandAck>)>;

struct EntityReading {
  int32_t partition = -1;
  int64_t offset = -1;         // the last offset applied to the state read
  nlohmann::json entity;       // null when the entity does not exist
};
using QueryDone = std::function<void(Result<EntityReading>)>;

struct WriterMetrics {
  Counter* accepted = nullptr;
  Counter* refused = nullptr;
  Counter* failed = nullptr;
  Histogram* batch_size = nullptr;
  Histogram* commit_seconds = nullptr;
};

struct PartitionOwnerOptions {
  KafkaClientOptions kafka;
  std::string topic;
  int32_t partition = 0;
  std::string transactional_id;
  std::chrono::milliseconds linger{2};
  size_t max_batch = 1024;
};

class PartitionOwner {
 public:
  enum class Phase { kStarting, kRecovering, kServing, kFenced, kFailed, kStopped };

  PartitionOwner(PartitionOwnerOptions options, const Domain& domain, WriterMetrics metrics);
  ~PartitionOwner();  // Stops and joins.
  PartitionOwner(const PartitionOwner&) = delete;
  PartitionOwner& operator=(const PartitionOwner&) = delete;

  void Start();
  // Thread-safe. `done` runs on the owner's thread (or inline when stopped).
  void Submit(Command command, CommandDone done);
  void Query(std::string partition_key, std::string entity, QueryDone done);
  // Stops taking commands, answers queued ones with kUnavailable, joins.
  void Stop();

  Phase phase() const { return phase_.load(); }
  int32_t partition() const { return options_.partition; }
  int64_t last_offset() const { return last_offset_.load(); }
  static const char* PhaseName(Phase phase);

 private:
  struct Work {
    Command command;
    CommandDone done;
    bool is_query = false;
    std::string query_key, query_entity;
    QueryDone query_done;
  };

  void Run();
  Status Fence();
  Status Recover();
  void Serve();
  void ProcessBatch(std::deque<Work>& batch);
  void FailAll(std::deque<Work>& batch, const Status& status);

  PartitionOwnerOptions options_;
  const Domain& domain_;
  WriterMetrics metrics_;
  std::unique_ptr<DomainState> state_;
  std::unique_ptr<TransactionalProducer> producer_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;
  bool stopping_ = false;

  std::atomic<Phase> phase_{Phase::kStarting};
  std::atomic<int64_t> last_offset_{-1};
  std::thread thread_;
};

}  // namespace freshet
