// RAII wrappers over librdkafka's C API: a transactional producer, a
// read_committed consumer with a rebalance hook, and the few admin calls
// freshet needs. Nothing outside core/ includes librdkafka.
//
// Threading: each object is used by one thread at a time (librdkafka's own
// handles are thread-safe, but these wrappers keep per-call state).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct rd_kafka_s;
struct rd_kafka_topic_s;
struct rd_kafka_message_s;
struct rd_kafka_error_s;

namespace freshet {

struct KafkaClientOptions {
  std::string brokers;
  std::map<std::string, std::string> properties;  // passed to librdkafka as-is
};

struct KafkaHandleDeleter {
  void operator()(rd_kafka_s* rk) const;
};
using KafkaHandle = std::unique_ptr<rd_kafka_s, KafkaHandleDeleter>;
struct KafkaTopicDeleter {
  void operator()(rd_kafka_topic_s* rkt) const;
};
using KafkaTopic = std::unique_ptr<rd_kafka_topic_s, KafkaTopicDeleter>;

struct KafkaHeader {
  std::string name;
  std::string value;
};

// Where a produced message landed; offset stays -1 until Kafka acknowledges it.
struct DeliveryReport {
  int32_t partition = -1;
  int64_t offset = -1;
  int error = 0;  // rd_kafka_resp_err_t
};

struct OutgoingMessage {
  std::string topic;
  int32_t partition = -1;  // -1: let librdkafka's partitioner choose (murmur2_random)
  std::string key;
  std::string value;
  std::vector<KafkaHeader> headers;
  bool null_key = false;    // send a null key, not an empty one
  bool null_value = false;  // send a tombstone, not an empty value
};

// A producer with a transactional.id. Call order: InitTransactions once, then
// for each batch Begin, Produce..., Commit (or Abort). A kFenced status from
// any call is final: another producer took the transactional.id over; destroy
// this one and stop serving what it wrote for.
class TransactionalProducer {
 public:
  static Result<std::unique_ptr<TransactionalProducer>> Create(const KafkaClientOptions& options,
                                                               const std::string& transactional_id);
  ~TransactionalProducer();
  TransactionalProducer(const TransactionalProducer&) = delete;
  TransactionalProducer& operator=(const TransactionalProducer&) = delete;

  // Fences any earlier producer with the same transactional.id and aborts its
  // open transaction.
  Status InitTransactions(std::chrono::milliseconds timeout);
  // Fetches where `topics` live now, so that the first message to each does
  // not wait for librdkafka's periodic lookup of topics it does not know
  // (up to 1 s: a new owner's claim and first commands waited that long).
  Status LearnTopics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout);
  Status Begin();
  // Queues `message` in the open transaction. `report`, if given, must stay
  // alive until Commit/Abort returns; Commit fills it in.
  Status Produce(const OutgoingMessage& message, DeliveryReport* report);
  // Waits until every message produced so far in the open transaction is in
  // the log (still invisible to read_committed until Commit).
  Status Flush(std::chrono::milliseconds timeout);
  // Flushes and commits. OK means every message of the transaction is durably
  // in the log and visible to read_committed consumers.
  Status Commit(std::chrono::milliseconds timeout);
  Status Abort(std::chrono::milliseconds timeout);

  const std::string& transactional_id() const { return transactional_id_; }

 private:
  TransactionalProducer(KafkaHandle handle, std::string transactional_id)
      : handle_(std::move(handle)), transactional_id_(std::move(transactional_id)) {}
  Status TxnCall(const char* what, rd_kafka_error_s* error);

  KafkaHandle handle_;
  std::string transactional_id_;
  std::vector<KafkaTopic> topics_;  // LearnTopics's: librdkafka keeps their metadata current
};

// A plain idempotent producer (no transactions), for side outputs such as
// the dead-letter topic. Thread-safe.
class Producer {
 public:
  static Result<std::unique_ptr<Producer>> Create(const KafkaClientOptions& options);
  ~Producer();
  Status Produce(const OutgoingMessage& message);
  // Waits until everything produced so far is acknowledged.
  Status Flush(std::chrono::milliseconds timeout);

 private:
  explicit Producer(KafkaHandle handle) : handle_(std::move(handle)) {}
  KafkaHandle handle_;
};

// One consumed record; owns the librdkafka message.
class KafkaMessage {
 public:
  KafkaMessage() = default;
  explicit KafkaMessage(rd_kafka_message_s* m);
  ~KafkaMessage();
  KafkaMessage(KafkaMessage&& other) noexcept : m_(other.m_) { other.m_ = nullptr; }
  KafkaMessage& operator=(KafkaMessage&& other) noexcept;

  std::string_view topic() const;
  int32_t partition() const;
  int64_t offset() const;
  std::string_view key() const;    // empty for a null key too
  std::string_view value() const;  // empty for a null value (a tombstone) too
  bool has_key() const;            // false: the key is null
  bool has_value() const;          // false: a tombstone
  int64_t timestamp_ms() const;    // -1 if none
  std::optional<std::string_view> header(const char* name) const;

 private:
  rd_kafka_message_s* m_ = nullptr;
};

struct TopicPartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;  // kOffsetBeginning / kOffsetEnd / kOffsetStored or an absolute offset
};

inline constexpr int64_t kOffsetBeginning = -2;
inline constexpr int64_t kOffsetEnd = -1;

// Called from inside Consumer::Poll when the group hands partitions to this
// consumer. The hook fills each entry's start offset (from the store that
// keeps the offsets: Postgres, RocksDB); entries left alone start at the
// beginning of the partition.
using AssignHook = std::function<Status(std::vector<TopicPartitionOffset>& assigned)>;
// Called before partitions are taken away; the last chance to flush. With
// the cooperative protocol (partition.assignment.strategy=cooperative-sticky)
// both hooks see only the partitions that change hands.
using RevokeHook = std::function<void(const std::vector<TopicPartitionOffset>& revoked)>;

// A read_committed consumer that commits no offsets to Kafka by itself: the
// store that receives the data keeps them (exactly-once), or the caller
// commits them with CommitOffsets after the store write (at-least-once).
class Consumer {
 public:
  // `group_id` may be empty for a consumer that only uses Assign.
  static Result<std::unique_ptr<Consumer>> Create(const KafkaClientOptions& options,
                                                  const std::string& group_id);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  Status Subscribe(const std::vector<std::string>& topics, AssignHook on_assign, RevokeHook on_revoke);
  Status Assign(const std::vector<TopicPartitionOffset>& partitions);

  enum class PollOutcome { kMessage, kTimeout, kPartitionEnd };
  // Waits up to `timeout` for one message. kPartitionEnd is reported once per
  // partition each time the consumer reaches its end (the last stable offset
  // for read_committed): `message` is then empty, `*eof_partition` is set
  // and `*eof_offset` is the offset where the fetch saw the end.
  Result<PollOutcome> Poll(std::chrono::milliseconds timeout, KafkaMessage* message,
                           int32_t* eof_partition = nullptr, int64_t* eof_offset = nullptr);
  // Stops / restarts fetching of assigned partitions (no messages are
  // returned for a paused partition; the group still counts it as ours).
  Status Pause(const std::vector<TopicPartitionOffset>& partitions);
  Status Resume(const std::vector<TopicPartitionOffset>& partitions);
  // Inside a RevokeHook: true when the partitions were lost (our session
  // expired) rather than handed over cleanly; someone else may own them now.
  bool AssignmentLost();
  // Repositions an assigned partition (after a failed store write).
  Status Seek(const std::string& topic, int32_t partition, int64_t offset);
  // Commits next offsets (partition -> the first offset not yet processed)
  // to the group, synchronously.
  Status CommitOffsets(const std::string& topic, const std::map<int32_t, int64_t>& next_offsets);
  // The group's committed next offsets of `partitions`; a partition without
  // a commit is absent.
  Result<std::map<int32_t, int64_t>> CommittedOffsets(const std::string& topic,
                                                      const std::vector<int32_t>& partitions,
                                                      std::chrono::milliseconds timeout);
  // The next offset the consumer will fetch for an assigned partition.
  Result<int64_t> Position(const std::string& topic, int32_t partition);
  Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& topic, int32_t partition,
                                                      std::chrono::milliseconds timeout);
  // How many partitions `topic` has (kNotFound: no such topic); asking
  // never creates it.
  Result<int> PartitionCount(const std::string& topic, std::chrono::milliseconds timeout);
  // The last known high watermark of an assigned partition, without asking
  // the broker (-1 when not known yet).
  int64_t CachedHighWatermark(const std::string& topic, int32_t partition);
  // True once an AssignHook failed: the group believes this consumer owns
  // partitions it is not reading. The caller should close it and start anew.
  bool assignment_failed() const { return assignment_failed_; }
  // The partitions currently assigned (for metrics and status).
  std::vector<TopicPartitionOffset> Assignment();
  // Leaves the group cleanly (runs the revoke hook).
  Status Close();

 private:
  friend struct ConsumerRebalance;
  explicit Consumer(KafkaHandle handle) : handle_(std::move(handle)) {}
  KafkaHandle handle_;
  std::string brokers_;  // for error messages
  AssignHook on_assign_;
  RevokeHook on_revoke_;
  Status rebalance_error_;
  bool assignment_failed_ = false;
  bool closed_ = false;
};

// The librdkafka version linked in, e.g. "2.8.0", and the patches
// scripts/librdkafka applied to it: "2.8.0, patched: register-partitions-at-once".
std::string KafkaLibraryVersion();

// Admin: creates `topic` unless it exists. OK if it already exists.
Status EnsureTopic(const KafkaClientOptions& options, const std::string& topic, int partitions,
                   int replication_factor, std::chrono::milliseconds timeout,
                   const std::map<std::string, std::string>& topic_config = {});
// Admin: deletes `topics`; a topic that does not exist is not an error.
// For benchmarks that make throwaway topics: a broker that keeps them all
// grows slower.
Status DeleteTopics(const KafkaClientOptions& options, const std::vector<std::string>& topics,
                    std::chrono::milliseconds timeout);
// Number of partitions of `topic` (kNotFound if it does not exist).
Result<int> PartitionCount(const KafkaClientOptions& options, const std::string& topic,
                           std::chrono::milliseconds timeout);

// Admin: the topic's effective configuration as the broker reports it
// (every entry, defaults included), e.g. "retention.ms" -> "604800000".
Result<std::map<std::string, std::string>> DescribeTopicConfig(const KafkaClientOptions& options,
                                                               const std::string& topic,
                                                               std::chrono::milliseconds timeout);
// Admin: deletes every record of `topic`/`partition` before `before_offset`
// (the log start moves there). For tests and operators' tooling.
Status DeleteRecordsBefore(const KafkaClientOptions& options, const std::string& topic, int32_t partition,
                           int64_t before_offset, std::chrono::milliseconds timeout);

// The topic settings under which a log keeps every record forever: the
// writer's event topic is its only copy of history.
inline const std::map<std::string, std::string>& KeepForeverTopicConfig() {
  static const std::map<std::string, std::string> config = {{"retention.ms", "-1"},
                                                            {"retention.bytes", "-1"}};
  return config;
}
// Why `config` (a DescribeTopicConfig answer) lets the broker delete old
// records, or "" when it keeps them all.
std::string RetentionProblem(const std::map<std::string, std::string>& config);

}  // namespace freshet
