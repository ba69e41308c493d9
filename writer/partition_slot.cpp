#include "writer/partition_slot.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <unordered_map>

#include "core/thread_name.h"
#include "writer/partition_snapshot.h"

namespace freshet {
namespace {

constexpr auto kTxnTimeout = std::chrono::seconds(30);

// The slot lingers for company only while its recent batches averaged more
// commands than this. At 8 clients over 8 partitions (1.3 per batch)
// lingering added latency and no company; at 64 (4.8 per batch) a longer
// linger made fewer, larger transactions (bench/README.md).
constexpr double kLingerAboveCommandsPerBatch = 2.0;
// A linger lasts at most this many times as long as recent transactions
// took. A broker that commits quickly has time for more transactions, and
// lingering longer than that costs clients more latency than the larger
// batch saves; one that commits slowly is busy, and batches grow. 64
// clients on 2 partitions (commits of 1.6 ms): 13,100 -> 14,900-16,100
// cmd/s; on 8 (commits of 5 ms, the linger stays 5 ms): unchanged
// (bench/README.md).
constexpr double kLingerPerCommit = 2.0;

double SecondsBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// How a transaction that failed ended, as far as its producer can tell.
enum class TxnFailure {
  kNotCommitted,
  // A commit that timed out or failed with an error that does not say
  // "aborted" (the coordinator can die after writing its decision and
  // before answering).
  kOutcomeUnknown,
  // The commit failed because a newer owner fenced this producer. Its
  // init_transactions aborts an open transaction, but completes one whose
  // commit the coordinator had already begun: the answer to a first EndTxn
  // that was lost, then "fenced" to its retry, means committed.
  kFencedWhileCommitting,
};

// Begin, produce, flush, commit: one transaction holding `messages`, each
// phase timed. OK means every message is in the log with its offset in
// `reports`; on failure `*failure` says whether it may have committed.
Status ProduceInOneTransaction(SlotProducer& producer, const std::vector<OutgoingMessage>& messages,
                               std::vector<DeliveryReport>& reports, const WriterMetrics& metrics,
                               const Clock& clock, std::chrono::steady_clock::time_point started,
                               TxnFailure* failure) {
  *failure = TxnFailure::kNotCommitted;
  Status st = producer.Begin();
  auto begun = clock.Now();
  metrics.ObservePhase(WriterPhase::kBegin, SecondsBetween(started, begun));
  for (size_t i = 0; st.ok() && i < messages.size(); ++i) st = producer.Produce(messages[i], &reports[i]);
  // Commit would flush too; flushing first tells the produce round trip
  // (with the partition's registration) apart from EndTxn.
  if (st.ok()) st = producer.Flush(kTxnTimeout);
  auto produced = clock.Now();
  metrics.ObservePhase(WriterPhase::kProduce, SecondsBetween(begun, produced));
  if (st.ok()) {
    st = producer.Commit(kTxnTimeout);
    if (st.code() == StatusCode::kFenced)
      *failure = TxnFailure::kFencedWhileCommitting;
    else if (!st.ok() && st.code() != StatusCode::kConflict)
      *failure = TxnFailure::kOutcomeUnknown;
  }
  metrics.ObservePhase(WriterPhase::kCommit, SecondsBetween(produced, clock.Now()));
  for (size_t i = 0; st.ok() && i < reports.size(); ++i)
    if (reports[i].offset < 0) {
      st = Status::Internal("commit succeeded but a delivery report is missing");
      *failure = TxnFailure::kOutcomeUnknown;  // committed, at offsets we do not know
    }
  return st;
}

}  // namespace

const char* WriterPhaseName(WriterPhase phase) {
  switch (phase) {
    case WriterPhase::kParse:
      return "parse";
    case WriterPhase::kQueue:
      return "queue";
    case WriterPhase::kLinger:
      return "linger";
    case WriterPhase::kDecide:
      return "decide";
    case WriterPhase::kBegin:
      return "begin";
    case WriterPhase::kProduce:
      return "produce";
    case WriterPhase::kCommit:
      return "commit";
    case WriterPhase::kAnswer:
      return "answer";
    case WriterPhase::kCount:
      break;
  }
  return "unknown";
}

PartitionSlot::PartitionSlot(PartitionSlotOptions options, const Domain& domain, WriterMetrics metrics,
                             SlotEnv& env)
    : options_(std::move(options)),
      domain_(domain),
      metrics_(metrics),
      env_(env),
      clock_(env.clock()),
      state_(domain.NewState()),
      idempotency_(options_.idempotency_keys) {}

PartitionSlot::~PartitionSlot() { Stop(); }

const char* PartitionSlot::RoleName(Role role) {
  switch (role) {
    case Role::kStandby:
      return "standby";
    case Role::kTakingOver:
      return "taking-over";
    case Role::kOwner:
      return "owner";
    case Role::kLogIncomplete:
      return "log-incomplete";
    case Role::kStopped:
      return "stopped";
  }
  return "unknown";
}

void PartitionSlot::Start() {
  thread_ = std::thread([this] {
    SetThreadName("slot-" + std::to_string(options_.partition));
    Run();
  });
}

void PartitionSlot::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

std::string PartitionSlot::refusal() const {
  std::lock_guard lock(mu_);
  return refusal_;
}

Status PartitionSlot::CheckLogStart() {
  auto marks = tail_->QueryWatermarks(options_.topic, options_.partition, std::chrono::seconds(10));
  if (!marks.ok()) return marks.status();
  int64_t log_start = marks->first;
  if (log_start <= next_offset_) return Status::Ok();
  std::string why =
      "partition " + std::to_string(options_.partition) + " of topic " + options_.topic +
      ": the log starts at offset " + std::to_string(log_start) + " but the writer's state needs offset " +
      std::to_string(next_offset_) + " onwards; records before " + std::to_string(log_start) +
      " were deleted (retention, compaction or delete-records), so the state rebuilt from what is left "
      "would be wrong. The writer refuses this partition. Keep the topic whole (retention.ms=-1, "
      "retention.bytes=-1, cleanup.policy=delete) and restore the partition's history from a copy; "
      "nothing else will make it serve again.";
  spdlog::error("{}", why);
  if (metrics_.log_incomplete) metrics_.log_incomplete->Add();
  {
    std::lock_guard lock(mu_);
    refusal_ = why;
    role_ = Role::kLogIncomplete;
  }
  FailQueued(Status::Unavailable(why));
  return Status::Conflict(why);
}

bool PartitionSlot::stopping() {
  std::lock_guard lock(mu_);
  return stopping_;
}

void PartitionSlot::RequestOwnership() {
  std::lock_guard lock(mu_);
  ++ownership_requests_;
  if (!want_owner_.exchange(true)) takeover_requested_ = clock_.Now();
  cv_.notify_all();
}

void PartitionSlot::ReleaseOwnership() {
  std::lock_guard lock(mu_);
  want_owner_ = false;
  cv_.notify_all();
}

void PartitionSlot::Submit(Command command, CommandDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && role_ == Role::kOwner) {
      Work w;
      w.command = std::move(command);
      w.done = std::move(done);
      w.queued_at = clock_.Now();
      queue_.push_back(std::move(w));
      if (queue_.size() == 1) oldest_queued_ = w.queued_at;
      // The slot waits for the first command, then (lingering) for as many
      // as its recent batches held: only those two moments need a wake-up.
      if (queue_.size() == 1 || queue_.size() == BatchEnough()) cv_.notify_all();
      return;
    }
  }
  if (std::string why = refusal(); !why.empty()) return done(Status::Unavailable(why));
  done(Status::Unavailable("partition " + std::to_string(options_.partition) +
                           " is not owned by this instance (" + RoleName(role()) + ")"));
}

void PartitionSlot::Query(std::string partition_key, std::string entity, QueryDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && role_ == Role::kOwner) {
      Work w;
      w.is_query = true;
      w.query_key = std::move(partition_key);
      w.query_entity = std::move(entity);
      w.query_done = std::move(done);
      w.queued_at = clock_.Now();
      queue_.push_back(std::move(w));
      if (queue_.size() == 1) oldest_queued_ = w.queued_at;
      cv_.notify_all();
      return;
    }
  }
  done(Status::Unavailable("partition " + std::to_string(options_.partition) +
                           " is not owned by this instance"));
}

void PartitionSlot::Run() {
  recovery_started_ = clock_.Now();
  Status st = Recover();
  if (!st.ok() && role_ != Role::kLogIncomplete && !stopping()) {
    spdlog::error("partition {}: cannot tail: {}", options_.partition, st.ToString());
    role_ = Role::kStopped;
    return;
  }
  while (!stopping()) RunOnce();
  FailQueued(Status::Unavailable("writer is shutting down"));
  producers_.clear();
  if (tail_) (void)tail_->Close();
  role_ = Role::kStopped;
}

Status PartitionSlot::Recover() {
  FRESHET_RETURN_IF_ERROR(OpenTail());
  // Start from the newest snapshot. Without one the state is a replay from
  // offset 0: slower, never wrong, so that is where repeated failures end.
  for (int attempt = 1; !stopping(); ++attempt) {
    Status st = LoadSnapshot();
    if (st.ok()) break;
    ResetState();
    if (attempt == 3) {
      spdlog::error("partition {}: cannot load a snapshot ({}); replaying the whole partition",
                    options_.partition, st.message());
      break;
    }
    spdlog::warn("partition {}: loading the snapshot: {}; retrying", options_.partition, st.message());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
  // Check that the log still holds everything after that point before
  // replaying anything.
  for (;;) {
    Status st = CheckLogStart();
    if (st.ok()) break;
    if (st.code() == StatusCode::kConflict || stopping()) return st;
    spdlog::warn("partition {}: {}; retrying", options_.partition, st.message());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
  return tail_->Assign(options_.topic, options_.partition,
                       next_offset_ > 0 ? next_offset_ : kOffsetBeginning);
}

void PartitionSlot::RunOnce() {
  Role r = role_.load();
  if (r == Role::kLogIncomplete) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  } else if (r == Role::kStandby && !want_owner_) {
    TailOnce(std::chrono::milliseconds(50));
  } else if (r == Role::kStandby) {
    Status st = TakeOver();
    if (st.ok()) return;
    if (role_ == Role::kLogIncomplete) {
      producers_.clear();
      return;
    }
    spdlog::error("partition {}: takeover failed: {}", options_.partition, st.ToString());
    if (st.code() == StatusCode::kFenced) StopWantingUnlessRequestedSince();  // someone newer owns it
    BecomeStandby(st.message());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
  } else if (r == Role::kOwner && !want_owner_) {
    BecomeStandby("ownership released");
  } else if (r == Role::kOwner) {
    ServeOnce();
  }
}

Status PartitionSlot::OpenTail() {
  auto tail = env_.NewTail(options_.kafka);
  if (!tail.ok()) return tail.status();
  tail_ = std::move(tail.value());
  return Status::Ok();
}

bool PartitionSlot::snapshots_enabled() const {
  return !options_.snapshot_topic.empty() && options_.snapshot_every_events > 0 && state_->can_snapshot();
}

void PartitionSlot::ResetState() {
  state_ = domain_.NewState();
  idempotency_.Clear();
  next_offset_ = 0;
  snapshot_next_offset_ = 0;
  applied_offset_ = -1;
  entity_count_ = 0;
  snapshot_offset_ = -1;
}

Status PartitionSlot::LoadSnapshot() {
  if (!snapshots_enabled()) return Status::Ok();
  auto started = clock_.Now();
  auto snapshot = env_.LoadLatestSnapshot(options_.kafka, options_.snapshot_topic, options_.partition,
                                          std::chrono::seconds(60));
  if (!snapshot.ok()) return snapshot.status();
  if (!snapshot->has_value()) {
    spdlog::info("partition {}: no snapshot in {}; replaying from offset 0", options_.partition,
                 options_.snapshot_topic);
    return Status::Ok();
  }
  PartitionSnapshot& s = **snapshot;
  // A snapshot past the end of the log was taken from an earlier topic of
  // the same name (deleted and created again): it is not this log's state.
  auto marks = tail_->QueryWatermarks(options_.topic, options_.partition, std::chrono::seconds(10));
  if (!marks.ok()) return marks.status();
  if (s.next_offset > marks->second) {
    spdlog::warn(
        "partition {}: ignoring the snapshot up to offset {}: the log ends at {}, so the snapshot belongs "
        "to an earlier topic {}; replaying from offset 0",
        options_.partition, s.next_offset, marks->second, options_.topic);
    return Status::Ok();
  }
  FRESHET_RETURN_IF_ERROR(state_->LoadEntities(s.entities));
  for (const auto& [key, offset] : s.idempotency) idempotency_.Put(key, offset);
  next_offset_ = s.next_offset;
  snapshot_next_offset_ = s.next_offset;
  applied_offset_ = s.next_offset - 1;
  entity_count_ = state_->entity_count();
  snapshot_offset_ = s.next_offset;
  spdlog::info(
      "partition {}: loaded the snapshot up to offset {} ({} entities, {} idempotency keys, written by {}) "
      "in "
      "{:.3f} s",
      options_.partition, s.next_offset, state_->entity_count(), s.idempotency.size(), s.instance,
      std::chrono::duration<double>(clock_.Now() - started).count());
  return Status::Ok();
}

Status PartitionSlot::MaybeSnapshot() {
  if (!snapshots_enabled() || next_offset_ - snapshot_next_offset_ < options_.snapshot_every_events)
    return Status::Ok();
  Status st = WriteSnapshot();
  if (st.ok()) return st;
  if (metrics_.snapshot_failures) metrics_.snapshot_failures->Add();
  if (st.code() == StatusCode::kFenced) return st;
  // Commands are unaffected (their transactions committed); the next try
  // comes after another snapshot_every_events events.
  spdlog::warn("partition {}: snapshot at offset {} not written: {}", options_.partition, next_offset_,
               st.message());
  snapshot_next_offset_ = next_offset_;
  return Status::Ok();
}

Status PartitionSlot::WriteSnapshot() {
  auto started = clock_.Now();
  PartitionSnapshot s;
  s.next_offset = next_offset_;
  s.instance = options_.instance;
  s.entities = state_->SaveEntities();  // committed state only: nothing is pending between batches
  s.idempotency = idempotency_.Entries();
  if (options_.fault == WriterFault::kStopBeforeSnapshot) {
    spdlog::warn("partition {}: FRESHET_WRITER_FAULT: stopping before the snapshot at offset {}",
                 options_.partition, s.next_offset);
    raise(SIGSTOP);
  }
  SlotProducer& producer = NextProducer();
  FRESHET_RETURN_IF_ERROR(producer.Begin());
  Status st = Status::Ok();
  for (const OutgoingMessage& chunk : SnapshotMessages(options_.snapshot_topic, options_.partition, s))
    if (st.ok()) st = producer.Produce(chunk, nullptr);
  if (st.ok() && options_.fault == WriterFault::kCrashInSnapshot) {
    st = producer.Flush(kTxnTimeout);
    spdlog::warn(
        "partition {}: FRESHET_WRITER_FAULT: crashing with the snapshot at offset {} in the log, not "
        "committed (flush: {})",
        options_.partition, s.next_offset, st.ToString());
    spdlog::default_logger()->flush();
    raise(SIGKILL);
  }
  if (st.ok()) st = producer.Commit(kTxnTimeout);
  if (!st.ok()) {
    if (st.code() != StatusCode::kFenced) {
      Status abort = producer.Abort(kTxnTimeout);
      if (abort.code() == StatusCode::kFenced) st = abort;
    }
    return st;
  }
  snapshot_next_offset_ = s.next_offset;
  snapshot_offset_ = s.next_offset;
  double seconds = std::chrono::duration<double>(clock_.Now() - started).count();
  if (metrics_.snapshots) metrics_.snapshots->Add();
  if (metrics_.snapshot_seconds) metrics_.snapshot_seconds->Observe(seconds);
  spdlog::info(
      "partition {}: snapshot up to offset {} committed ({} entities, {} idempotency keys) in {:.3f} s",
      options_.partition, s.next_offset, state_->entity_count(), s.idempotency.size(), seconds);
  return Status::Ok();
}

void PartitionSlot::Apply(const TailRecord& record) {
  auto event = DecodeEventValue(record.value);
  if (!event.ok()) {
    // The writer only publishes valid envelopes; anything else was written
    // by someone else and is not part of the state.
    spdlog::warn("partition {}: offset {}: skipping undecodable event: {}", options_.partition, record.offset,
                 event.status().message());
  } else {
    Status st = state_->ApplyCommitted(*event);
    if (!st.ok())
      spdlog::warn("partition {}: offset {}: {}", options_.partition, record.offset, st.message());
    if (!event->id.empty()) idempotency_.Put(event->id, record.offset);
  }
  next_offset_ = record.offset + 1;
  applied_offset_ = record.offset;
  entity_count_ = state_->entity_count();
}

void PartitionSlot::TailOnce(std::chrono::milliseconds wait) {
  TailRecord record;
  auto outcome = tail_->Poll(wait, &record);
  if (!outcome.ok()) {
    spdlog::debug("partition {}: tail: {}", options_.partition, outcome.status().message());
    return;
  }
  if (*outcome == Consumer::PollOutcome::kMessage) Apply(record);
  if (*outcome == Consumer::PollOutcome::kPartitionEnd) ReportRecovered();
}

void PartitionSlot::ReportRecovered() {
  if (recovered_) return;
  recovered_ = true;
  double seconds = std::chrono::duration<double>(clock_.Now() - recovery_started_).count();
  if (metrics_.recovery_seconds) metrics_.recovery_seconds->Observe(seconds);
  spdlog::info("partition {}: state recovered up to offset {} ({} entities; snapshot up to {}) in {:.3f} s",
               options_.partition, next_offset_, state_->entity_count(), snapshot_offset_.load(), seconds);
}

Status PartitionSlot::TakeOver() {
  std::chrono::steady_clock::time_point requested;
  {
    std::lock_guard lock(mu_);
    requested = takeover_requested_;
  }
  {
    std::lock_guard lock(mu_);
    role_ = Role::kTakingOver;
    takeover_request_ = ownership_requests_;
  }
  producers_.clear();
  turn_ = 0;
  // Where the producers write: events, claims and snapshots.
  std::vector<std::string> topics = {options_.topic, options_.owners_topic};
  if (!options_.snapshot_topic.empty()) topics.push_back(options_.snapshot_topic);
  for (int i = 0; i < std::max(1, options_.producers); ++i) {
    std::string id = options_.transactional_id + (i == 0 ? "" : "." + std::to_string(i));
    auto producer = env_.NewProducer(options_.kafka, id, topics);
    if (!producer.ok()) return producer.status();
    producers_.push_back(std::move(producer.value()));
    // Fences the previous owner's producer with this id: its open
    // transaction is aborted and its next commit fails. init_transactions
    // may time out while the coordinator loads; keep trying while we still
    // want the partition.
    for (;;) {
      Status st = producers_.back()->InitTransactions(kTxnTimeout);
      if (st.ok()) break;
      if (st.code() != StatusCode::kUnavailable) return st;
      if (stopping() || !want_owner_) return Status::Unavailable("takeover abandoned");
      spdlog::warn("partition {}: {}; retrying", options_.partition, st.message());
    }
  }
  // Only now, with every id fenced, can no earlier owner commit anything more.
  FRESHET_RETURN_IF_ERROR(CatchUp());
  ReportRecovered();
  FRESHET_RETURN_IF_ERROR(Claim());
  // A takeover that replayed many events snapshots them at once, so that the
  // next one does not replay them again.
  FRESHET_RETURN_IF_ERROR(MaybeSnapshot());
  FRESHET_RETURN_IF_ERROR(tail_->Pause(options_.topic, options_.partition));
  {
    std::lock_guard lock(mu_);
    role_ = Role::kOwner;
  }
  double seconds = std::chrono::duration<double>(clock_.Now() - requested).count();
  if (metrics_.takeover_seconds) metrics_.takeover_seconds->Observe(seconds);
  spdlog::info("partition {}: owner from offset {} ({} entities), takeover took {:.3f} s", options_.partition,
               applied_offset_.load(), state_->entity_count(), seconds);
  return Status::Ok();
}

Status PartitionSlot::CatchUp() {
  // The log may have lost its head while this standby tailed it (say a
  // retention change): the consumer would silently skip to what is left.
  FRESHET_RETURN_IF_ERROR(CheckLogStart());
  // After fencing nobody else can commit to the partition: whatever is up to
  // its end now is everything. Seeking makes the consumer report the end anew.
  FRESHET_RETURN_IF_ERROR(
      tail_->Seek(options_.topic, options_.partition, next_offset_ > 0 ? next_offset_ : kOffsetBeginning));
  auto deadline = clock_.Now() + std::chrono::seconds(120);
  for (;;) {
    if (stopping()) return Status::Unavailable("stopped while catching up");
    if (clock_.Now() > deadline) return Status::Timeout("catching up took over 120 s");
    TailRecord record;
    auto outcome = tail_->Poll(std::chrono::milliseconds(100), &record);
    if (!outcome.ok()) continue;
    if (*outcome == Consumer::PollOutcome::kMessage) Apply(record);
    if (*outcome == Consumer::PollOutcome::kPartitionEnd && ReachedLogEnd(record.offset)) return Status::Ok();
  }
}

bool PartitionSlot::ReachedLogEnd(int64_t fetched_end) {
  // A leader elected moments ago (its broker died or hung) can answer
  // fetches from a high watermark that has not caught up yet: the fetch
  // then says "end" before transactions committed ahead of our fencing, and
  // a retry of their commands would be decided again (the chaos test saw
  // it). So the end is also asked of the leader (ListOffsets; a new leader
  // refuses to answer until its high watermark is current), and reading
  // goes on until the fetch reaches it.
  auto marks = tail_->QueryWatermarks(options_.topic, options_.partition, std::chrono::seconds(5));
  if (marks.ok() && fetched_end >= marks->second) return true;
  spdlog::info("partition {}: the fetch ended at {} but the log ends at {}; reading on", options_.partition,
               fetched_end, marks.ok() ? std::to_string(marks->second) : marks.status().message());
  // Reports the end again once the fetch gets there; a short pause, so
  // that a leader still catching up is not asked in a tight loop.
  int64_t from = fetched_end >= 0 ? fetched_end : next_offset_ > 0 ? next_offset_ : kOffsetBeginning;
  Status st = tail_->Seek(options_.topic, options_.partition, from);
  if (!st.ok()) spdlog::warn("partition {}: catch-up seek: {}", options_.partition, st.message());
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return stopping_; });
  return false;
}

Status PartitionSlot::Claim() {
  if (options_.owners_topic.empty()) return Status::Ok();
  // Written with the fencing producer: a claim commits only while we own
  // the transactional.id, so the owners topic never names a zombie last.
  SlotProducer& producer = NextProducer();
  FRESHET_RETURN_IF_ERROR(producer.Begin());
  OutgoingMessage claim{options_.owners_topic,
                        0,
                        options_.topic + "/" + std::to_string(options_.partition),
                        options_.claim,
                        {}};
  Status st = producer.Produce(claim, nullptr);
  if (st.ok()) st = producer.Commit(kTxnTimeout);
  if (!st.ok() && st.code() != StatusCode::kFenced) (void)producer.Abort(kTxnTimeout);
  return st.WithContext("claiming the partition");
}

void PartitionSlot::BecomeStandby(const std::string& why) {
  // Role and queue change under one lock: Submit checks the role under it,
  // so nothing can be queued after the queue is failed.
  Role was;
  std::deque<Work> rest;
  {
    std::lock_guard lock(mu_);
    was = role_.exchange(Role::kStandby);
    rest.swap(queue_);
  }
  FailAll(rest, Status::Unavailable("partition " + std::to_string(options_.partition) + " moved: " + why),
          metrics_);
  producers_.clear();
  state_->DropPending();
  (void)tail_->Resume(options_.topic, options_.partition);
  Status st =
      tail_->Seek(options_.topic, options_.partition, next_offset_ > 0 ? next_offset_ : kOffsetBeginning);
  if (!st.ok()) spdlog::warn("partition {}: standby seek: {}", options_.partition, st.message());
  if (was == Role::kOwner) spdlog::info("partition {}: standby ({})", options_.partition, why);
}

void PartitionSlot::FailQueued(const Status& status) {
  std::deque<Work> rest;
  {
    std::lock_guard lock(mu_);
    rest.swap(queue_);
  }
  FailAll(rest, status, metrics_);
}

SlotProducer& PartitionSlot::NextProducer() {
  SlotProducer& producer = *producers_[turn_];
  turn_ = (turn_ + 1) % producers_.size();
  return producer;
}

size_t PartitionSlot::BatchEnough() const {
  return std::clamp<size_t>(static_cast<size_t>(std::ceil(largest_recent_batch_)),
                            std::min<size_t>(2, options_.max_batch), options_.max_batch);
}

std::chrono::steady_clock::duration PartitionSlot::Linger() const {
  return std::min<std::chrono::steady_clock::duration>(
      options_.linger,
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(kLingerPerCommit * recent_commit_));
}

void PartitionSlot::ServeOnce() {
  std::deque<Work> batch;
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(100),
                 [&] { return stopping_ || !queue_.empty() || !want_owner_; });
    if (queue_.empty() || stopping_ || !want_owner_) return;
    // Group commit: let a batch fill until its oldest command has waited
    // `linger` (as a Kafka producer's linger.ms). Under load the commands
    // queued during the previous commit have waited that long already, so
    // they go at once instead of lingering on top of a commit.
    // Lingering only pays when several clients send to this partition at
    // once: a client alone, or a few spread over the partitions (recent
    // batches of one or two commands), gets its commit at once, not a linger
    // later. An average, so that one small batch under load does not switch
    // lingering off.
    // A linger also ends once as many commands have queued as the recent
    // batches held (BatchEnough()): with clients that wait for their
    // answer before sending again, those are the clients just answered,
    // and waiting longer brings nobody (64 clients over 4 partitions: the
    // slots lingered 3.3-3.9 ms of an 8.4 ms cycle; bench/README.md).
    // And it lasts no longer than twice what recent transactions took
    // (Linger()).
    const size_t enough = BatchEnough();
    if (queue_.size() < enough && options_.linger.count() > 0 &&
        recent_batch_commands_ > kLingerAboveCommandsPerBatch) {
      auto linger_started = clock_.Now();
      // Waits as long as the environment's clock says is left, then asks it
      // again: a test's manual clock, not the wall, ends the linger.
      auto batch_ready = [&] { return stopping_ || queue_.size() >= enough; };
      const auto linger_ends = oldest_queued_ + Linger();
      for (auto left = linger_ends - clock_.Now();
           left > std::chrono::steady_clock::duration::zero() && !batch_ready();
           left = linger_ends - clock_.Now())
        cv_.wait_for(lock, left, batch_ready);
      metrics_.ObservePhase(WriterPhase::kLinger, SecondsBetween(linger_started, clock_.Now()));
    }
    auto taken = clock_.Now();
    while (!queue_.empty() && batch.size() < options_.max_batch) {
      metrics_.ObservePhase(WriterPhase::kQueue, SecondsBetween(queue_.front().queued_at, taken));
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    recent_batch_commands_ = 0.8 * recent_batch_commands_ + 0.2 * static_cast<double>(batch.size());
    // The largest recent batch, forgotten slowly: a client that stops
    // sending costs a few full lingers, one that is late once costs one.
    largest_recent_batch_ = std::max(static_cast<double>(batch.size()), 0.9 * largest_recent_batch_);
    // What is left over waited at least as long as this batch: no linger.
    if (!queue_.empty()) oldest_queued_ = std::chrono::steady_clock::time_point{};
  }
  ProcessBatch(batch);
}

struct PartitionSlot::CommandOutcome {
  Status status;           // non-OK: refused or invalid
  size_t first_event = 0;  // index into the batch's delivery reports
  size_t event_count = 0;
  int64_t known_offset = -1;  // a retry of a command committed earlier
  int64_t same_as = -1;       // a retry of a command earlier in this batch
};

void PartitionSlot::ProcessBatch(std::deque<Work>& batch) {
  auto decide_started = clock_.Now();
  std::vector<OutgoingMessage> messages;
  std::vector<CommandOutcome> outcomes = DecideBatch(batch, &messages);
  auto decided = clock_.Now();
  metrics_.ObservePhase(WriterPhase::kDecide, SecondsBetween(decide_started, decided));
  std::vector<DeliveryReport> reports(messages.size());
  if (!messages.empty() && !CommitBatch(batch, messages, reports, decided)) return;
  AnswerBatch(batch, outcomes, reports);
  // After the answers: a snapshot never delays the commands it follows.
  if (!messages.empty()) {
    Status st = MaybeSnapshot();
    if (st.code() == StatusCode::kFenced) LoseToNewerOwner(st);
  }
}

std::vector<PartitionSlot::CommandOutcome> PartitionSlot::DecideBatch(
    const std::deque<Work>& batch, std::vector<OutgoingMessage>* messages) {
  std::vector<CommandOutcome> outcomes(batch.size());
  std::unordered_map<std::string, size_t> batch_keys;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Work& w = batch[i];
    if (w.is_query) continue;
    const std::string& key = w.command.id;
    if (!key.empty()) {
      if (auto offset = idempotency_.Find(key)) {
        outcomes[i].known_offset = *offset;
        continue;
      }
      if (auto it = batch_keys.find(key); it != batch_keys.end()) {
        outcomes[i].same_as = static_cast<int64_t>(it->second);
        continue;
      }
    }
    auto events = state_->Decide(w.command);
    if (!events.ok()) {
      outcomes[i].status = events.status();
      continue;
    }
    if (!key.empty()) batch_keys[key] = i;
    outcomes[i].first_event = messages->size();
    outcomes[i].event_count = events->size();
    for (DecidedEvent& e : events.value()) {
      OutgoingMessage m;
      m.topic = options_.topic;
      m.partition = options_.partition;
      m.key = w.command.partition_key;
      m.value = std::move(e.value);
      m.headers = {{kTypeHeader, std::move(e.type)}, {kSchemaHeader, kSchemaVersion}};
      messages->push_back(std::move(m));
    }
  }
  return outcomes;
}

bool PartitionSlot::CommitBatch(std::deque<Work>& batch, const std::vector<OutgoingMessage>& messages,
                                std::vector<DeliveryReport>& reports,
                                std::chrono::steady_clock::time_point started) {
  SlotProducer& producer = NextProducer();
  TxnFailure failure = TxnFailure::kNotCommitted;
  Status st = ProduceInOneTransaction(producer, messages, reports, metrics_, clock_, started, &failure);
  if (!st.ok() && failure == TxnFailure::kOutcomeUnknown) {
    ReloadAfterUnknownCommit(batch, st);
    return false;
  }
  if (!st.ok()) {
    AbandonBatch(batch, producer, st, failure == TxnFailure::kFencedWhileCommitting);
    return false;
  }
  state_->CommitPending();
  std::chrono::duration<double> took = clock_.Now() - started;
  recent_commit_ = recent_commit_.count() == 0 ? took : 0.8 * recent_commit_ + 0.2 * took;
  for (const auto& r : reports) {
    next_offset_ = std::max(next_offset_, r.offset + 1);
    applied_offset_ = std::max(applied_offset_.load(), r.offset);
  }
  entity_count_ = state_->entity_count();
  if (metrics_.commit_seconds) metrics_.commit_seconds->Observe(took.count());
  if (metrics_.batch_size) metrics_.batch_size->Observe(static_cast<double>(messages.size()));
  return true;
}

void PartitionSlot::ReloadAfterUnknownCommit(std::deque<Work>& batch, const Status& why) {
  // Aborting now could fail while the commit completes anyway, and "not
  // committed" would then be a lie that a retry turns into a duplicate. So
  // the slot takes its partition over again: init_transactions makes the
  // coordinator finish or abort the transaction, and the catch-up reads
  // whatever committed (with its command ids) before any retry is answered.
  // The role changes before anyone is answered: a client's retry must not
  // find the slot still serving from the state the commit may have missed.
  spdlog::warn("partition {}: commit outcome unknown, taking the partition over again: {}",
               options_.partition, why.message());
  {
    std::lock_guard lock(mu_);
    takeover_requested_ = clock_.Now();
  }
  BecomeStandby("commit outcome unknown");  // still wanting ownership: the next turn takes it over
  FailAll(batch,
          Status::Unavailable("partition " + std::to_string(options_.partition) +
                              ": the transaction's outcome is unknown (" + why.message() +
                              "); retry with the same id: it is answered once the log is read again"),
          metrics_);
}

void PartitionSlot::AbandonBatch(std::deque<Work>& batch, SlotProducer& producer, Status why,
                                 bool may_have_committed) {
  // Nothing of this batch is acknowledged: the overlay goes, the clients
  // hear "retry" (and whether it may have committed all the same: a retry
  // with the same id is then answered once by the partition's owner, one
  // without an id may be a second command).
  state_->DropPending();
  if (why.code() != StatusCode::kFenced) {
    Status abort = producer.Abort(kTxnTimeout);
    if (abort.code() == StatusCode::kFenced) why = abort;
  }
  // A fenced slot is a standby before its clients hear "retry", so that the
  // retry goes to whoever owns the partition now.
  if (why.code() == StatusCode::kFenced) {
    LoseToNewerOwner(why);
  } else {
    spdlog::warn("partition {}: transaction failed, batch dropped: {}", options_.partition, why.message());
  }
  std::string what =
      may_have_committed
          ? ": fenced by a newer owner while committing, so the transaction may have committed; "
            "retry with the same id (the partition's owner answers it once): "
          : ": not committed, retry: ";
  FailAll(batch,
          Status::Unavailable("partition " + std::to_string(options_.partition) + what + why.message()),
          metrics_);
}

void PartitionSlot::AnswerBatch(std::deque<Work>& batch, const std::vector<CommandOutcome>& outcomes,
                                const std::vector<DeliveryReport>& reports) {
  auto answer_started = clock_.Now();
  auto offset_of = [&](size_t i) {
    const CommandOutcome& o = outcomes[i];
    return o.event_count ? reports[o.first_event + o.event_count - 1].offset : applied_offset_.load();
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    Work& w = batch[i];
    if (w.is_query) {
      w.query_done(EntityReading{options_.partition, applied_offset_.load(),
                                 state_->EntityJson(w.query_key, w.query_entity)});
      continue;
    }
    const CommandOutcome& o = outcomes[i];
    if (o.known_offset >= 0) {
      if (metrics_.duplicates) metrics_.duplicates->Add();
      w.done(CommandAck{options_.partition, o.known_offset, true});
      continue;
    }
    if (o.same_as >= 0) {
      const CommandOutcome& first = outcomes[static_cast<size_t>(o.same_as)];
      if (!first.status.ok()) {
        w.done(first.status);
      } else {
        if (metrics_.duplicates) metrics_.duplicates->Add();
        w.done(CommandAck{options_.partition, offset_of(static_cast<size_t>(o.same_as)), true});
      }
      continue;
    }
    if (!o.status.ok()) {
      if (metrics_.refused) metrics_.refused->Add();
      w.done(o.status);
      continue;
    }
    int64_t offset = offset_of(i);
    idempotency_.Put(w.command.id, offset);
    if (metrics_.accepted) metrics_.accepted->Add();
    w.done(CommandAck{options_.partition, offset, false});
  }
  metrics_.ObservePhase(WriterPhase::kAnswer, SecondsBetween(answer_started, clock_.Now()));
}

void PartitionSlot::LoseToNewerOwner(const Status& why) {
  spdlog::error("partition {}: fenced by a newer owner: {}", options_.partition, why.message());
  if (metrics_.fenced) metrics_.fenced->Add();
  StopWantingUnlessRequestedSince();
  BecomeStandby("fenced by a newer owner");
}

void PartitionSlot::StopWantingUnlessRequestedSince() {
  // An owner blocked in a commit (say its broker hung) can have its
  // partition revoked, handed to another instance that fences it, and
  // handed back to it, all before the commit fails. The group's newest word
  // wins: without this, nobody would take the partition over again until
  // the next rebalance.
  std::lock_guard lock(mu_);
  if (ownership_requests_ != takeover_request_) {
    spdlog::info("partition {}: fenced, but assigned to this instance again since; taking it over again",
                 options_.partition);
    return;
  }
  want_owner_ = false;
}

void PartitionSlot::FailAll(std::deque<Work>& batch, const Status& status, const WriterMetrics& metrics) {
  for (Work& w : batch) {
    if (w.is_query) {
      w.query_done(status);
    } else {
      if (metrics.failed) metrics.failed->Add();
      w.done(status);
    }
  }
  batch.clear();
}

}  // namespace freshet
