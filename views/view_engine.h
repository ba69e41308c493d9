// ViewEngine: consumes the event topic (read_committed, in a consumer group
// of its own) into one projection and one store (Postgres or RocksDB),
// exactly once.
//
// Exactly-once (the default): the engine never commits offsets to Kafka.
// Each flush writes the pending rows and the next offset of every partition
// they cover in ONE store transaction; on (re)assignment each partition
// resumes from the offset stored with the rows. At-least-once
// (delivery: at_least_once): rows first, then the offsets to the consumer
// group. A failed flush drops the pending changes and seeks
// back to the stored offsets, so nothing is lost or applied twice.
//
// An event the projection cannot apply goes to the dead-letter topic with
// the view, the error and its source partition/offset in headers, and the
// view moves on; or, with stop_on_error, the view stops before it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/kafka.h"
#include "core/metrics.h"
#include "live/change_feed.h"
#include "sources/record_decoder.h"
#include "views/engine_env.h"
#include "views/projection.h"
#include "views/view_owners.h"
#include "views/view_store.h"
#include "views/write_pipeline.h"

namespace freshet {

struct ViewEngineOptions {
  KafkaClientOptions kafka;
  std::string topic;
  // How the topic's records are laid out, for projections that read any
  // source (Projection::reads_records), and whether the view may start from
  // the earliest record left when the log lost its beginning
  // (source.allow_incomplete_log); parse_key: a definition reads $key/ptr.
  SourceSpec source;
  bool parse_key = false;
  std::string group_id;
  std::chrono::milliseconds flush_interval{100};
  // A flush is due at this many pending events. While the previous write
  // still runs, the batch goes on growing until the projection holds this
  // many pending rows: an aggregate's batch then coalesces more events into
  // the same rows instead of the consumer waiting for the store.
  size_t max_batch_events = 50000;
  int session_timeout_ms = 10000;
  std::chrono::milliseconds max_lag{5000};
  bool stop_on_error = false;
  // Offsets go to the consumer group after each store write instead of into
  // the store with the rows: a crash may apply events twice (aggregates
  // then over-count; latest-row views converge).
  bool at_least_once = false;
  std::string dead_letter_topic;
  DeadLetterSink* dead_letters = nullptr;  // shared, thread-safe; required unless stop_on_error
  // Kafka and the clock (views/engine_env.h); null: KafkaEngineEnv().
  EngineEnv* env = nullptr;
  ChangeFeed* feed = nullptr;  // gets every committed flush; may be null
  // Called when a store write has committed and when a new version went
  // live: what readers waiting for an offset (min_offset) wake up on. Runs
  // on the engine's threads; must not block. May be empty.
  std::function<void()> on_commit;
  // Told when a partition is assigned (kLoading), when its rows have caught
  // up with the log as it was then (kServing: read to its end and written;
  // at once while a new version builds, since readers get the live one),
  // and when it is revoked (kReleased). Runs on the engine's thread. May be
  // empty.
  std::function<void(int32_t partition, PartitionState state)> on_partition;
};

// A view's metrics, registered once per process and shared by the engines
// that serve the view over time.
struct ViewMetrics {
  // `labels` as rendered: view="stock_levels",store="postgres".
  ViewMetrics(MetricsRegistry& registry, const std::string& labels);
  Counter& events;
  Counter& dead_letters;
  Counter& flushes;
  Counter& flush_failures;
  Histogram& flush_seconds;
  Histogram& visible_seconds;
  // Registry formats: decoded here, taken from another view's decode, and
  // waits to keep together with a slower view (sources/decoded_records.h).
  Counter& records_decoded;
  Counter& records_decoded_by_another_view;
  Counter& decode_pacing_waits;
};

struct ViewStatus {
  std::string state = "starting";  // starting, running, stopped (with error)
  std::string error;
  std::map<int32_t, int64_t> next_offsets;  // stored with the rows
  std::map<int32_t, int64_t> lag;           // events (and markers) not yet visible
  int64_t last_flush_ms = 0;
  bool stale = false;
  bool building = false;  // a new version being built beside the live one
  std::string rebuild;    // progress of `freshet rebuild` (JSON text), "" when none
  // Why the view is behind while it waits for something outside it (the
  // schema registry is down), "" when it is not waiting.
  std::string waiting_for;
  // Partitions whose log starts after offset 0 -> their first offset.
  std::map<int32_t, int64_t> log_start;
};

class ViewEngine {
 public:
  ViewEngine(ViewEngineOptions options, std::unique_ptr<Projection> projection,
             std::unique_ptr<ViewStore> store, ViewMetrics& metrics);
  ~ViewEngine();

  // Consumes until `stop` becomes true, then flushes and leaves the group.
  // Returns non-OK for errors it cannot ride out (the caller may restart
  // it) and when the view stops on a bad event (kInvalidArgument).
  Status Run(const std::atomic<bool>& stop);

  // Thread-safe snapshot for /views/{name}/status.
  ViewStatus Snapshot() const;

 private:
  // Run's steps. Connect: the consumer, the log check, the subscription.
  Status Connect();
  // How long the next poll may wait: less while a flush or feed frame is due.
  std::chrono::milliseconds PollWait() const;
  // Lands the write in flight when it is done (or must be: idle, snapshots
  // wanted), publishes the status when idle, and ticks the feed. Non-OK: a
  // write failed, rewind.
  Status LandWriteInFlight(Consumer::PollOutcome outcome);
  enum class Applied { kPending, kNothing, kStopped };
  // Applies one record to the projection (or dead-letters it). kNothing:
  // nothing joined the batch (a revoked partition's record, a registry
  // wait, a rewind); kStopped: stop_on_error, `*stopped` says why.
  Applied ApplyRecord(const RawRecord& record, const std::atomic<bool>& stop, Status* stopped);
  // Starts a flush when one is due; after a failed one, rewinds to the
  // stored offsets (with backoff). kConflict: a rebuild swapped the table
  // out, Run returns it.
  Status FlushIfDue(Consumer::PollOutcome outcome, Status failed, const std::atomic<bool>& stop);

  Status OnAssign(std::vector<TopicPartitionOffset>& assigned);
  void OnRevoke(const std::vector<TopicPartitionOffset>& revoked);
  // For a store of partition shares: the projection's pending rows are of
  // `partition` from now on; those of the partition before are staged,
  // marked with it. TakeRows hands over the staged and pending rows;
  // DropPending forgets them.
  void StageShares(int32_t partition);
  std::vector<RowWrite> TakeRows();
  void DropPending();
  // Writes the pending rows and waits for them (and any write in flight).
  Status Flush();
  // Starts writing the pending rows beside the consuming thread (at most one
  // write in flight: call FinishFlush first).
  Status StartFlush();
  // Waits for the write in flight, then publishes it: offsets, metrics,
  // status, feed. On failure the pending rows are dropped too.
  Status FinishFlush();
  bool WriteDone() const;
  // Where each partition resumes: the store's offsets (exactly-once) or the
  // group's commits (at-least-once).
  Result<std::map<int32_t, int64_t>> StoredOffsets(const std::vector<int32_t>& partitions);
  Status Rewind();
  // kInvalidArgument when a partition's log starts after the offset this
  // view needs next (and source.allow_incomplete_log is off).
  Status CheckSourceLog();
  Status DeadLetter(const RawRecord& record, const std::string& error);
  // A record's schema cannot be fetched (the registry is down): the record
  // is fine, so it is never dead-lettered. Writes what came before it,
  // waits (with backoff), and rewinds to read it again.
  void WaitForRegistry(const Status& why, const std::atomic<bool>& stop);
  // While building a new version: swaps it in once every partition is
  // consumed to its end (checked at most once a second).
  Status MaybeSwapIn();
  void PublishStatus();
  // kServing for the assigned partitions that have caught up since.
  void AnnounceServing();

  ViewEngineOptions options_;
  std::unique_ptr<Projection> projection_;
  std::unique_ptr<ViewStore> store_;
  EngineEnv& env_;
  const Clock& clock_;
  std::unique_ptr<SourceConsumer> consumer_;
  std::unique_ptr<RecordDecoder> decoder_;  // when the projection reads records
  ViewMetrics& metrics_;

  // Per assigned partition: the next offset stored with the rows (-1: none
  // yet) and the next offset the pending changes reach.
  std::map<int32_t, int64_t> stored_next_;
  std::map<int32_t, int64_t> pending_next_;
  size_t pending_events_ = 0;
  // The store keeps partition shares and the projection cannot keep them
  // apart itself (Projection::SeparatePartitions): see StageShares.
  bool stage_shares_ = false;
  std::vector<RowWrite> staged_rows_;  // see StageShares
  int32_t share_partition_ = -1;       // whose rows the projection holds
  std::chrono::steady_clock::time_point oldest_pending_;
  std::vector<int64_t> pending_event_times_;  // ts of events in the batch, for latency
  int64_t last_flush_ms_ = 0;
  std::map<int32_t, bool> at_end_;         // assigned partitions consumed to their end
  std::map<int32_t, bool> serving_;        // assigned partitions announced as serving
  std::map<int32_t, int64_t> serve_from_;  // the log's end after the assignment
  bool in_rebalance_ = false;              // inside OnAssign / OnRevoke
  struct InRebalance {
    explicit InRebalance(bool& flag) : flag_(flag) { flag_ = true; }
    ~InRebalance() { flag_ = false; }
    bool& flag_;
  };
  int partition_count_ = 0;
  std::chrono::steady_clock::time_point last_swap_check_;
  std::chrono::steady_clock::time_point last_rebuild_check_;
  std::string rebuild_progress_;
  std::map<int32_t, int64_t> log_start_;  // partitions that lost their log's beginning
  std::map<int32_t, int64_t> log_first_;  // every partition's first offset, at start
  std::string waiting_for_;               // see ViewStatus::waiting_for
  std::chrono::milliseconds registry_backoff_{100};
  std::chrono::milliseconds flush_backoff_{100};  // between rewinds while the store is down

  // The one batch being written while the next is applied.
  struct InFlightWrite {
    std::future<Status> done;
    std::vector<OffsetAdvance> advances;
    std::map<int32_t, int64_t> next;  // pending_next_ when it started
    std::vector<int64_t> event_times;
    std::vector<RowChange> changes;  // filled by the write when feeding
    bool feeding = false;
    std::chrono::steady_clock::time_point started;
  };
  std::unique_ptr<InFlightWrite> in_flight_;
  bool rewind_needed_ = false;  // a write failed inside a rebalance callback

  mutable std::mutex status_mu_;
  ViewStatus status_;

  // Runs StartFlush's writes. Last, so it is destroyed first: a write still
  // running uses the store and its InFlightWrite.
  WritePipeline writes_;
};

}  // namespace freshet
