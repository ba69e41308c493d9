// ViewEngine: consumes the event topic (read_committed, in a consumer group)
// into one projection and its Postgres sink, exactly once.
//
// The engine never commits offsets to Kafka. Each flush writes the pending
// rows and the next offset of every partition they cover in ONE Postgres
// transaction; on (re)assignment each partition resumes from the offset
// stored with the rows. A failed flush drops the pending changes and seeks
// back to the stored offsets, so nothing is lost or applied twice.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "core/kafka.h"
#include "core/metrics.h"
#include "sinks/postgres_sink.h"
#include "views/projection.h"

namespace freshet {

struct ViewEngineOptions {
  KafkaClientOptions kafka;
  std::string topic;
  std::string group_id;
  std::chrono::milliseconds flush_interval{100};
  size_t max_batch_events = 50000;
  int session_timeout_ms = 10000;
};

class ViewEngine {
 public:
  ViewEngine(ViewEngineOptions options, std::unique_ptr<Projection> projection,
             std::unique_ptr<PostgresSink> sink, MetricsRegistry& metrics);
  ~ViewEngine();

  // Consumes until `stop` becomes true, then flushes and leaves the group.
  // Returns a non-OK Status only for errors it cannot ride out.
  Status Run(const std::atomic<bool>& stop);

  // Thread-safe snapshot for /status: partition -> next offset in the store.
  std::map<int32_t, int64_t> StoredOffsets() const;

 private:
  Status OnAssign(std::vector<TopicPartitionOffset>& assigned);
  void OnRevoke(const std::vector<TopicPartitionOffset>& revoked);
  Status Flush();
  Status Rewind();

  ViewEngineOptions options_;
  std::unique_ptr<Projection> projection_;
  std::unique_ptr<PostgresSink> sink_;
  std::unique_ptr<Consumer> consumer_;

  // Per assigned partition: the next offset stored with the rows (-1: none
  // yet) and the next offset the pending changes reach.
  std::map<int32_t, int64_t> stored_next_;
  std::map<int32_t, int64_t> pending_next_;
  size_t pending_events_ = 0;
  std::chrono::steady_clock::time_point oldest_pending_;
  std::vector<int64_t> pending_event_times_;  // ts of events in the batch, for latency

  mutable std::mutex status_mu_;
  std::map<int32_t, int64_t> status_offsets_;

  Counter& events_;
  Counter& bad_events_;
  Counter& flushes_;
  Counter& flush_failures_;
  Histogram& flush_seconds_;
  Histogram& visible_seconds_;
};

}  // namespace freshet
