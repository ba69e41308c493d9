#include "writer/partition_owner.h"

#include <spdlog/spdlog.h>

namespace freshet {
namespace {

constexpr auto kTxnTimeout = std::chrono::seconds(30);

}  // namespace

PartitionOwner::PartitionOwner(PartitionOwnerOptions options, const Domain& domain, WriterMetrics metrics)
    : options_(std::move(options)), domain_(domain), metrics_(metrics), state_(domain.NewState()) {}

PartitionOwner::~PartitionOwner() { Stop(); }

const char* PartitionOwner::PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kStarting: return "starting";
    case Phase::kRecovering: return "recovering";
    case Phase::kServing: return "serving";
    case Phase::kFenced: return "fenced";
    case Phase::kFailed: return "failed";
    case Phase::kStopped: return "stopped";
  }
  return "unknown";
}

void PartitionOwner::Start() { thread_ = std::thread([this] { Run(); }); }

void PartitionOwner::Submit(Command command, CommandDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      Work w;
      w.command = std::move(command);
      w.done = std::move(done);
      queue_.push_back(std::move(w));
      cv_.notify_one();
      return;
    }
  }
  done(Status::Unavailable("partition " + std::to_string(options_.partition) + " is not served here (" +
                           PhaseName(phase()) + ")"));
}

void PartitionOwner::Query(std::string partition_key, std::string entity, QueryDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      Work w;
      w.is_query = true;
      w.query_key = std::move(partition_key);
      w.query_entity = std::move(entity);
      w.query_done = std::move(done);
      queue_.push_back(std::move(w));
      cv_.notify_one();
      return;
    }
  }
  done(Status::Unavailable("partition " + std::to_string(options_.partition) + " is not served here"));
}

void PartitionOwner::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void PartitionOwner::Run() {
  Status st = Fence();
  if (st.ok()) st = Recover();
  if (st.ok()) {
    phase_ = Phase::kServing;
    spdlog::info("partition {}: serving from offset {} ({} entities)", options_.partition, last_offset_.load(),
                 state_->entity_count());
    Serve();
  } else {
    spdlog::error("partition {}: {}", options_.partition, st.ToString());
    phase_ = st.code() == StatusCode::kFenced ? Phase::kFenced : Phase::kFailed;
  }
  // Answer whatever is still queued so no client waits forever.
  std::deque<Work> rest;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    rest.swap(queue_);
  }
  FailAll(rest, Status::Unavailable("partition " + std::to_string(options_.partition) + " is no longer served here (" +
                                    PhaseName(phase()) + ")"));
  if (phase_ == Phase::kServing) phase_ = Phase::kStopped;
  producer_.reset();
}

Status PartitionOwner::Fence() {
  auto producer = TransactionalProducer::Create(options_.kafka, options_.transactional_id);
  if (!producer.ok()) return producer.status();
  producer_ = std::move(producer.value());
  // init_transactions may time out while the coordinator loads; retry until stopped.
  for (;;) {
    Status st = producer_->InitTransactions(kTxnTimeout);
    if (st.ok()) return st;
    if (st.code() != StatusCode::kUnavailable) return st;
    spdlog::warn("partition {}: {}; retrying", options_.partition, st.message());
    std::lock_guard lock(mu_);
    if (stopping_) return Status::Unavailable("stopped while fencing");
  }
}

Status PartitionOwner::Recover() {
  phase_ = Phase::kRecovering;
  auto consumer = Consumer::Create(options_.kafka, "");
  if (!consumer.ok()) return consumer.status();
  FRESHET_RETURN_IF_ERROR(
      (*consumer)->Assign({{options_.topic, options_.partition, kOffsetBeginning}}));
  size_t applied = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return Status::Unavailable("stopped while recovering");
    }
    KafkaMessage message;
    auto outcome = (*consumer)->Poll(std::chrono::milliseconds(200), &message);
    if (!outcome.ok()) {
      spdlog::warn("partition {}: recovery: {}", options_.partition, outcome.status().message());
      continue;
    }
    if (*outcome == Consumer::PollOutcome::kPartitionEnd) break;
    if (*outcome != Consumer::PollOutcome::kMessage) continue;
    auto event = DecodeEventValue(message.value());
    if (!event.ok()) {
      // The writer only ever publishes valid envelopes; anything else was
      // written by someone else and is not part of the state.
      spdlog::warn("partition {}: offset {}: skipping undecodable event: {}", options_.partition,
                   message.offset(), event.status().message());
    } else {
      Status st = state_->ApplyCommitted(*event);
      if (!st.ok())
        spdlog::warn("partition {}: offset {}: {}", options_.partition, message.offset(), st.message());
    }
    last_offset_ = message.offset();
    ++applied;
  }
  (void)(*consumer)->Close();
  spdlog::info("partition {}: recovered {} events", options_.partition, applied);
  return Status::Ok();
}

void PartitionOwner::Serve() {
  for (;;) {
    std::deque<Work> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // Group commit: let a batch fill for up to `linger` once work arrived.
      if (queue_.size() < options_.max_batch && options_.linger.count() > 0) {
        auto deadline = std::chrono::steady_clock::now() + options_.linger;
        cv_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= options_.max_batch; });
      }
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ProcessBatch(batch);
    if (phase_ != Phase::kServing) return;
  }
}

void PartitionOwner::ProcessBatch(std::deque<Work>& batch) {
  struct Outcome {
    Status status;            // non-OK: refused or invalid
    size_t first_event = 0;   // index into `reports`
    size_t event_count = 0;
  };
  std::vector<Outcome> outcomes(batch.size());
  std::vector<OutgoingMessage> messages;
  for (size_t i = 0; i < batch.size(); ++i) {
    Work& w = batch[i];
    if (w.is_query) continue;
    auto events = state_->Decide(w.command);
    if (!events.ok()) {
      outcomes[i].status = events.status();
      continue;
    }
    outcomes[i].first_event = messages.size();
    outcomes[i].event_count = events->size();
    for (const Event& e : events.value()) {
      OutgoingMessage m;
      m.topic = options_.topic;
      m.partition = options_.partition;
      m.key = w.command.partition_key;
      m.value = EncodeEventValue(e);
      m.headers = {{kTypeHeader, e.type}, {kSchemaHeader, kSchemaVersion}};
      messages.push_back(std::move(m));
    }
  }

  std::vector<DeliveryReport> reports(messages.size());
  if (!messages.empty()) {
    auto started = std::chrono::steady_clock::now();
    Status st = producer_->Begin();
    for (size_t i = 0; st.ok() && i < messages.size(); ++i) st = producer_->Produce(messages[i], &reports[i]);
    if (st.ok()) st = producer_->Commit(kTxnTimeout);
    if (st.ok()) {
      for (const auto& r : reports) {
        if (r.offset < 0) {
          st = Status::Internal("commit succeeded but a delivery report is missing");
          break;
        }
      }
    }
    if (!st.ok()) {
      state_->DropPending();
      if (st.code() != StatusCode::kFenced) {
        Status abort = producer_->Abort(kTxnTimeout);
        if (abort.code() == StatusCode::kFenced) st = abort;
      }
      if (st.code() == StatusCode::kFenced) {
        spdlog::error("partition {}: fenced by a newer owner; stopping: {}", options_.partition, st.message());
        phase_ = Phase::kFenced;
      } else {
        spdlog::warn("partition {}: transaction failed, batch dropped: {}", options_.partition, st.message());
      }
      FailAll(batch, Status::Unavailable("partition " + std::to_string(options_.partition) +
                                         ": not committed, retry: " + st.message()));
      return;
    }
    state_->CommitPending();
    for (const auto& r : reports) last_offset_ = std::max(last_offset_.load(), r.offset);
    if (metrics_.commit_seconds)
      metrics_.commit_seconds->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (metrics_.batch_size) metrics_.batch_size->Observe(static_cast<double>(messages.size()));
  }

  for (size_t i = 0; i < batch.size(); ++i) {
    Work& w = batch[i];
    if (w.is_query) {
      EntityReading reading{options_.partition, last_offset_.load(),
                            state_->EntityJson(w.query_key, w.query_entity)};
      w.query_done(std::move(reading));
      continue;
    }
    const Outcome& o = outcomes[i];
    if (!o.status.ok()) {
      if (metrics_.refused) metrics_.refused->Add();
      w.done(o.status);
      continue;
    }
    int64_t offset = o.event_count ? reports[o.first_event + o.event_count - 1].offset : last_offset_.load();
    if (metrics_.accepted) metrics_.accepted->Add();
    w.done(CommandAck{options_.partition, offset});
  }
}

void PartitionOwner::FailAll(std::deque<Work>& batch, const Status& status) {
  for (Work& w : batch) {
    if (w.is_query) {
      w.query_done(status);
    } else {
      if (metrics_.failed) metrics_.failed->Add();
      w.done(status);
    }
  }
  batch.clear();
}

}  // namespace freshet
