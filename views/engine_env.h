// EngineEnv: the one seam between a view engine and the world outside its
// process, as LevelDB's Env is for files: the consumer it reads with (and
// asks the topic's metadata), where dead letters go, and the clock.
//
// Production uses KafkaEngineEnv() (librdkafka, the system's clocks); unit
// tests drive an engine with scripted records, an in-memory store and a
// manual clock (tests/views/view_engine_test.cpp). Exactly-once, fencing
// and read_committed behaviour are tested against a real broker, never
// through this seam.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/kafka.h"
#include "core/status.h"
#include "sources/record_decoder.h"

namespace freshet {

// The consumer calls a view engine makes (see Consumer in core/kafka.h for
// what each means).
class SourceConsumer {
 public:
  virtual ~SourceConsumer() = default;
  virtual Status Subscribe(const std::string& topic, AssignHook on_assign, RevokeHook on_revoke) = 0;
  // Waits up to `timeout` for one record. With kMessage, `record` views the
  // record's bytes until the next Poll.
  virtual Result<Consumer::PollOutcome> Poll(std::chrono::milliseconds timeout, RawRecord* record,
                                             int32_t* eof_partition) = 0;
  virtual Status Seek(const std::string& topic, int32_t partition, int64_t offset) = 0;
  virtual Status CommitOffsets(const std::string& topic, const std::map<int32_t, int64_t>& next_offsets) = 0;
  virtual Result<std::map<int32_t, int64_t>> CommittedOffsets(const std::string& topic,
                                                              const std::vector<int32_t>& partitions,
                                                              std::chrono::milliseconds timeout) = 0;
  virtual Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& topic, int32_t partition,
                                                              std::chrono::milliseconds timeout) = 0;
  virtual int64_t CachedHighWatermark(const std::string& topic, int32_t partition) = 0;
  virtual Result<int> PartitionCount(const std::string& topic, std::chrono::milliseconds timeout) = 0;
  virtual bool assignment_failed() const = 0;
  virtual Status Close() = 0;
};

// Where records a view cannot apply go (the dead-letter topic). Shared by
// the engines of a process: thread-safe.
class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  virtual Status Produce(const OutgoingMessage& message) = 0;
  // Every record produced so far is durable (or the error says why not).
  virtual Status Flush(std::chrono::milliseconds timeout) = 0;
};

class EngineEnv {
 public:
  virtual ~EngineEnv() = default;
  virtual Result<std::unique_ptr<SourceConsumer>> NewConsumer(const KafkaClientOptions& options,
                                                              const std::string& group_id) = 0;
  virtual const Clock& clock() const = 0;
};

// librdkafka and the system's clocks.
EngineEnv& KafkaEngineEnv();
// A DeadLetterSink over an idempotent producer.
std::unique_ptr<DeadLetterSink> KafkaDeadLetters(std::unique_ptr<Producer> producer);

}  // namespace freshet
