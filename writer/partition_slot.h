// PartitionSlot: one partition of the event topic as one writer instance
// sees it. A single thread owns the partition's state in both roles:
//
//  - standby: tails the partition (read_committed) and applies every event,
//    so the state stays warm;
//  - owner: the single, serializable writer of the partition. Taking over
//    fences any earlier owner (init_transactions with the partition's stable
//    transactional.id), reads the few events the standby had not seen yet,
//    claims the partition in the owners topic, then serves. Commands are
//    decided in order against committed + pending state and published in ONE
//    Kafka transaction per batch (group commit); each is answered only after
//    the commit. A refused command or an aborted transaction changes nothing.
//    A fenced owner acknowledges nothing more and falls back to standby;
//    it takes the partition over again only if the group handed the
//    partition to it again after its takeover began.
//  - snapshots: when the domain supports them, the owner writes the
//    partition's committed state to the snapshot topic every
//    `snapshot_every_events` events (in a transaction of its fencing
//    producer, see partition_snapshot.h), and a slot starts from the newest
//    snapshot and replays only the events after it.
//  - log-incomplete: the partition's log no longer starts where recovery
//    needs it (offset 0, or the offset the loaded snapshot covers), so
//    the state it would rebuild is wrong. The slot refuses to serve and
//    says why (refusal()); it never turns back by itself.
//
// Idempotency keys travel in the events' `id`, so a retried command is
// recognised after a restart or a takeover too.
#pragma once

#include <array>
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
#include <vector>

#include "core/metrics.h"
#include "writer/decider.h"
#include "writer/idempotency_index.h"
#include "writer/slot_env.h"

namespace freshet {

// What an accepted command produced: the position of its last event (or of
// the state it was decided against, when it produced none).
struct CommandAck {
  int32_t partition = -1;
  int64_t offset = -1;
  bool duplicate = false;  // an earlier command with the same idempotency key
};

// Called once per command, from the slot's thread (or inline when the slot
// does not own the partition). A refusal comes as StatusCode::kRefused;
// kUnavailable means "not committed, safe to retry" (with the same key).
using CommandDone = std::function<void(Result<CommandAck>)>;

struct EntityReading {
  int32_t partition = -1;
  int64_t offset = -1;    // the last offset applied to the state read
  nlohmann::json entity;  // null when the entity does not exist
};
using QueryDone = std::function<void(Result<EntityReading>)>;

// Where a command's time goes inside the writer, one histogram each
// (freshet_writer_phase_seconds{phase=...}). Per HTTP request: kParse (the
// body to commands). Per command: kQueue (submitted until its batch is
// taken, lingering included). Per batch: kLinger (the slot waiting for company), kDecide,
// kBegin, kProduce (handing the events to librdkafka and waiting until
// the broker has them: AddPartitionsToTxn and the produce round trip),
// kCommit (EndTxn), kAnswer (running the callbacks).
enum class WriterPhase { kParse, kQueue, kLinger, kDecide, kBegin, kProduce, kCommit, kAnswer, kCount };
const char* WriterPhaseName(WriterPhase phase);

struct WriterMetrics {
  Counter* accepted = nullptr;
  Counter* refused = nullptr;
  Counter* failed = nullptr;
  Counter* duplicates = nullptr;
  Counter* fenced = nullptr;
  Counter* log_incomplete = nullptr;  // partitions refused for a lost log prefix
  Histogram* batch_size = nullptr;
  Histogram* commit_seconds = nullptr;
  Histogram* takeover_seconds = nullptr;
  Counter* snapshots = nullptr;           // snapshots committed
  Counter* snapshot_failures = nullptr;   // snapshots not committed
  Histogram* snapshot_seconds = nullptr;  // serialize + commit
  Histogram* recovery_seconds = nullptr;  // a slot's start: snapshot load + replay to the end
  std::array<Histogram*, static_cast<size_t>(WriterPhase::kCount)> phase_seconds{};

  // Records `seconds` for `phase`, if that histogram is registered.
  void ObservePhase(WriterPhase phase, double seconds) const {
    if (Histogram* h = phase_seconds[static_cast<size_t>(phase)]) h->Observe(seconds);
  }
};

// Faults a test can inject into a writer process (FRESHET_WRITER_FAULT), to
// show what a crash or a zombie at the worst moment leaves behind. Never set
// in production.
enum class WriterFault {
  kNone,
  kCrashInSnapshot,     // SIGKILL itself with a snapshot's chunks in the log, not committed
  kStopBeforeSnapshot,  // SIGSTOP itself right before a snapshot's transaction
};

struct PartitionSlotOptions {
  KafkaClientOptions kafka;
  std::string topic;
  int32_t partition = 0;
  // The first of the partition's transactional.ids; the others are this
  // with ".1", ".2", ... (see `producers`).
  std::string transactional_id;
  // Transactional producers used in turn, each with its own transactional.id,
  // all fenced by a new owner. Several keep a transaction from starting soon
  // after the same producer's previous commit, which the broker answers with
  // CONCURRENT_TRANSACTIONS while that commit's markers are being written
  // (librdkafka then waits a fixed 20 ms). Three, not two, since librdkafka
  // registers a partition at once (scripts/librdkafka-patches): transactions
  // start 1 ms sooner, and with two 1-2% of them met that wait at 8 clients
  // (bench/README.md). Transactions still run one at a time, in order.
  int producers = 3;
  std::chrono::milliseconds linger{2};
  size_t max_batch = 1024;
  size_t idempotency_keys = 100000;
  // Where to claim ownership (key "<topic>/<partition>", value: claim JSON).
  std::string owners_topic;
  std::string claim;  // e.g. {"url": "http://10.0.0.5:8080", "instance": "..."}
  // Snapshots: empty topic or 0 events turns them off (recovery replays the
  // whole partition).
  std::string snapshot_topic;
  int64_t snapshot_every_events = 100000;
  std::string instance;  // names the snapshots this instance writes
  WriterFault fault = WriterFault::kNone;
};

class PartitionSlot {
 public:
  enum class Role { kStandby, kTakingOver, kOwner, kLogIncomplete, kStopped };

  // `env` gives the slot its Kafka clients (KafkaSlotEnv() in production);
  // it must outlive the slot.
  PartitionSlot(PartitionSlotOptions options, const Domain& domain, WriterMetrics metrics,
                SlotEnv& env = KafkaSlotEnv());
  ~PartitionSlot();  // Stops and joins.
  PartitionSlot(const PartitionSlot&) = delete;
  PartitionSlot& operator=(const PartitionSlot&) = delete;

  void Start();  // begins as a standby, tailing from the first offset
  void Stop();   // answers queued commands with kUnavailable, joins

  // Asynchronous role changes, requested by the group membership. Each
  // RequestOwnership is a new word from the group: a fencing that ends an
  // earlier ownership does not undo it.
  void RequestOwnership();
  void ReleaseOwnership();

  // Thread-safe. Commands are only taken while the slot owns the partition.
  void Submit(Command command, CommandDone done);
  void Query(std::string partition_key, std::string entity, QueryDone done);

  Role role() const { return role_.load(); }
  bool wants_ownership() const { return want_owner_.load(); }
  int32_t partition() const { return options_.partition; }
  int64_t applied_offset() const { return applied_offset_.load(); }  // last offset in the state
  size_t entity_count() const { return entity_count_.load(); }
  // The offset the newest snapshot this slot loaded or wrote covers up to
  // (its next_offset); -1 when none.
  int64_t snapshot_offset() const { return snapshot_offset_.load(); }
  // Why the slot refuses the partition (role kLogIncomplete), else "".
  std::string refusal() const;
  static const char* RoleName(Role role);

 private:
  struct Work {
    Command command;
    CommandDone done;
    std::chrono::steady_clock::time_point queued_at;
    bool is_query = false;
    std::string query_key, query_entity;
    QueryDone query_done;
  };

  void Run();
  // From the start to a tail assigned where the state ends: the newest
  // snapshot loaded and the log checked to hold everything after it.
  // Non-OK: the slot cannot tail its partition at all.
  Status Recover();
  // One turn of the role loop: tail, take over, serve or wait.
  void RunOnce();
  Status OpenTail();
  // Loads the newest snapshot into the state, if there is one to load.
  Status LoadSnapshot();
  void ResetState();
  bool snapshots_enabled() const;
  // Writes a snapshot when enough events came since the last one.
  // kFenced when a newer owner took over meanwhile; other failures are
  // logged and counted, not returned (the commands committed regardless).
  Status MaybeSnapshot();
  Status WriteSnapshot();
  void ReportRecovered();  // once: the state reached the end of the log
  void LoseToNewerOwner(const Status& why);
  // kConflict when the log starts after next_offset_: records the state
  // needs were deleted. Puts the slot in kLogIncomplete.
  Status CheckLogStart();
  void TailOnce(std::chrono::milliseconds wait);
  void Apply(const TailRecord& record);
  Status TakeOver();
  Status CatchUp();
  // Whether the end a fetch reported (`fetched_end`) is the log's end as
  // its leader says; if not, seeks there so that the end is reported anew.
  bool ReachedLogEnd(int64_t fetched_end);
  Status Claim();
  // The producer for the next transaction (one transaction each, in turn).
  SlotProducer& NextProducer();
  void ServeOnce();
  // The queue length that ends a linger: the largest recent batch, at least
  // 2 and at most max_batch. Called with mu_ held.
  size_t BatchEnough() const;
  // How long a batch may linger for company now: `linger`, and no more
  // than twice as long as recent transactions took.
  std::chrono::steady_clock::duration Linger() const;
  // Decides a batch, commits its events in one transaction, answers every
  // command in it, then maybe snapshots.
  void ProcessBatch(std::deque<Work>& batch);
  struct CommandOutcome;  // what deciding one command came to
  // Decides each command of `batch` against the state (its pending overlay,
  // so later commands see earlier ones), answering retries from the
  // idempotency index; appends the events to produce to `messages`.
  std::vector<CommandOutcome> DecideBatch(const std::deque<Work>& batch,
                                          std::vector<OutgoingMessage>* messages);
  // Produces `messages` in one transaction; `reports` gets their offsets.
  // false: not committed as far as the slot knows; the pending overlay is
  // dropped and every command of `batch` answered "retry" (when the commit
  // may have gone through, after the slot reads the log again).
  bool CommitBatch(std::deque<Work>& batch, const std::vector<OutgoingMessage>& messages,
                   std::vector<DeliveryReport>& reports, std::chrono::steady_clock::time_point started);
  // The transaction failed (and was aborted unless fenced): answer "retry".
  // `may_have_committed`: fenced while committing (see TxnFailure).
  void AbandonBatch(std::deque<Work>& batch, SlotProducer& producer, Status why, bool may_have_committed);
  // The commit may have gone through: answer "retry", then take the
  // partition over again so the log says what committed.
  void ReloadAfterUnknownCommit(std::deque<Work>& batch, const Status& why);
  void AnswerBatch(std::deque<Work>& batch, const std::vector<CommandOutcome>& outcomes,
                   const std::vector<DeliveryReport>& reports);
  void BecomeStandby(const std::string& why);
  // A newer owner fenced this slot: stop wanting the partition, unless the
  // group asked for it again since this slot's takeover began.
  void StopWantingUnlessRequestedSince();
  void FailQueued(const Status& status);
  static void FailAll(std::deque<Work>& batch, const Status& status, const WriterMetrics& metrics);
  bool stopping();

  PartitionSlotOptions options_;
  const Domain& domain_;
  WriterMetrics metrics_;
  SlotEnv& env_;
  const Clock& clock_;  // env_.clock(): every time the slot reads

  // Owned by the slot's thread.
  std::unique_ptr<DomainState> state_;
  IdempotencyIndex idempotency_;
  std::unique_ptr<SlotTail> tail_;
  // The partition's fencing producers (options_.producers of them), used in
  // turn; empty unless owner or taking over.
  std::vector<std::unique_ptr<SlotProducer>> producers_;
  size_t turn_ = 0;          // index of the producer of the next transaction
  int64_t next_offset_ = 0;  // the next offset the state has not seen
  // Where the events counted towards the next snapshot start: the newest
  // snapshot's offset, or where a failed one was tried (so that a failing
  // snapshot is not retried after every batch).
  int64_t snapshot_next_offset_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;
  std::chrono::steady_clock::time_point oldest_queued_;  // when queue_ last became non-empty
  // Commands per batch, a moving average: lingering waits only while it
  // shows other clients sending at the same time.
  double recent_batch_commands_ = 2;
  // The largest recent batch, decaying; see BatchEnough().
  double largest_recent_batch_ = 0;
  // How long recent transactions took, decided to committed (a moving
  // average, by the slot's clock); see Linger(). Slot thread only.
  std::chrono::duration<double> recent_commit_{0};
  bool stopping_ = false;
  std::string refusal_;
  // RequestOwnership calls so far, and how many there had been when the
  // current (or last) takeover began.
  uint64_t ownership_requests_ = 0;
  uint64_t takeover_request_ = 0;

  std::atomic<bool> want_owner_{false};
  std::atomic<Role> role_{Role::kStandby};
  std::atomic<int64_t> applied_offset_{-1};
  std::atomic<size_t> entity_count_{0};
  std::atomic<int64_t> snapshot_offset_{-1};
  std::chrono::steady_clock::time_point takeover_requested_;
  std::chrono::steady_clock::time_point recovery_started_;
  bool recovered_ = false;
  std::thread thread_;
};

}  // namespace freshet
