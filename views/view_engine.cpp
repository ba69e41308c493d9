#include "views/view_engine.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace freshet {

ViewEngine::ViewEngine(ViewEngineOptions options, std::unique_ptr<Projection> projection,
                       std::unique_ptr<PostgresSink> sink, MetricsRegistry& metrics)
    : options_(std::move(options)),
      projection_(std::move(projection)),
      sink_(std::move(sink)),
      events_(metrics.AddCounter("freshet_view_events_total", "Events applied",
                                 "view=\"" + projection_->table().view_name + "\"")),
      bad_events_(metrics.AddCounter("freshet_view_bad_events_total", "Events skipped as unprocessable",
                                     "view=\"" + projection_->table().view_name + "\"")),
      flushes_(metrics.AddCounter("freshet_view_flushes_total", "Committed flushes",
                                  "view=\"" + projection_->table().view_name + "\"")),
      flush_failures_(metrics.AddCounter("freshet_view_flush_failures_total", "Failed flushes (rewound)",
                                         "view=\"" + projection_->table().view_name + "\"")),
      flush_seconds_(metrics.AddHistogram("freshet_view_flush_seconds", "Time to write one flush",
                                          LatencyBuckets(), "view=\"" + projection_->table().view_name + "\"")),
      visible_seconds_(metrics.AddHistogram("freshet_view_event_to_visible_seconds",
                                            "From the event's timestamp to its flush committing",
                                            LatencyBuckets(), "view=\"" + projection_->table().view_name + "\"")) {}

ViewEngine::~ViewEngine() = default;

std::map<int32_t, int64_t> ViewEngine::StoredOffsets() const {
  std::lock_guard lock(status_mu_);
  return status_offsets_;
}

Status ViewEngine::OnAssign(std::vector<TopicPartitionOffset>& assigned) {
  auto stored = sink_->LoadOffsets();
  if (!stored.ok()) return stored.status();
  for (auto& tp : assigned) {
    auto it = stored->find(tp.partition);
    tp.offset = it == stored->end() ? kOffsetBeginning : it->second;
    stored_next_[tp.partition] = it == stored->end() ? -1 : it->second;
    pending_next_[tp.partition] = stored_next_[tp.partition];
    spdlog::info("view {}: assigned partition {} from offset {}", projection_->table().view_name, tp.partition,
                 it == stored->end() ? std::string("beginning") : std::to_string(it->second));
  }
  return Status::Ok();
}

void ViewEngine::OnRevoke(const std::vector<TopicPartitionOffset>& revoked) {
  // Write what we have while we still own the partitions; if that fails the
  // next owner simply starts from the stored offsets.
  Status st = Flush();
  if (!st.ok()) spdlog::warn("view {}: flush on revoke failed: {}", projection_->table().view_name, st.message());
  (void)projection_->TakePending();
  pending_events_ = 0;
  for (const auto& tp : revoked) {
    stored_next_.erase(tp.partition);
    pending_next_.erase(tp.partition);
  }
}

Status ViewEngine::Flush() {
  if (pending_events_ == 0) return Status::Ok();
  std::vector<OffsetAdvance> advances;
  for (const auto& [partition, next] : pending_next_) {
    int64_t stored = stored_next_[partition];
    if (next != stored) advances.push_back({partition, stored, next});
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<RowWrite> rows = projection_->TakePending();
  Status st = sink_->Write(rows, advances);
  if (!st.ok()) {
    flush_failures_.Add();
    pending_events_ = 0;
    pending_event_times_.clear();
    return st;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  flush_seconds_.Observe(seconds);
  int64_t now = NowMillis();
  for (int64_t ts : pending_event_times_) visible_seconds_.Observe(static_cast<double>(now - ts) / 1000.0);
  pending_event_times_.clear();
  flushes_.Add();
  stored_next_ = pending_next_;
  pending_events_ = 0;
  {
    std::lock_guard lock(status_mu_);
    status_offsets_ = stored_next_;
  }
  return Status::Ok();
}

Status ViewEngine::Rewind() {
  // After a failed flush our idea of the stored offsets may be stale (another
  // process may have taken over): read them again, then seek every owned
  // partition back to them.
  auto stored = sink_->LoadOffsets();
  if (!stored.ok()) return stored.status();
  for (auto& [partition, next] : stored_next_) {
    auto it = stored->find(partition);
    next = it == stored->end() ? -1 : it->second;
    pending_next_[partition] = next;
    FRESHET_RETURN_IF_ERROR(consumer_->Seek(options_.topic, partition, next < 0 ? kOffsetBeginning : next));
  }
  return Status::Ok();
}

Status ViewEngine::Run(const std::atomic<bool>& stop) {
  const std::string& view = projection_->table().view_name;
  KafkaClientOptions kafka = options_.kafka;
  kafka.properties["session.timeout.ms"] = std::to_string(options_.session_timeout_ms);
  auto consumer = Consumer::Create(kafka, options_.group_id);
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(consumer.value());
  FRESHET_RETURN_IF_ERROR(consumer_->Subscribe(
      {options_.topic}, [this](std::vector<TopicPartitionOffset>& a) { return OnAssign(a); },
      [this](const std::vector<TopicPartitionOffset>& r) { OnRevoke(r); }));

  auto backoff = std::chrono::milliseconds(100);
  while (!stop.load()) {
    auto wait = std::chrono::milliseconds(100);
    if (pending_events_ > 0) {
      auto due = oldest_pending_ + options_.flush_interval;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - std::chrono::steady_clock::now());
      wait = std::max(std::chrono::milliseconds(0), std::min(wait, left));
    }
    KafkaMessage message;
    auto outcome = consumer_->Poll(wait, &message);
    if (!outcome.ok()) {
      if (consumer_->assignment_failed()) {
        // The store was unreachable during assignment: we hold no partitions.
        // Leave the group; the caller rejoins once the store is back.
        (void)consumer_->Close();
        return outcome.status();
      }
      spdlog::warn("view {}: {}", view, outcome.status().message());
      continue;
    }
    if (*outcome == Consumer::PollOutcome::kMessage) {
      int32_t partition = message.partition();
      if (!pending_next_.count(partition)) continue;  // a message from before a revoke
      auto event = DecodeEventValue(message.value());
      Status st = event.ok() ? projection_->Apply(*event) : event.status();
      if (!st.ok()) {
        bad_events_.Add();
        spdlog::warn("view {}: partition {} offset {}: skipped: {}", view, partition, message.offset(), st.message());
      } else {
        events_.Add();
        int64_t ts = event->ts_ms > 0 ? event->ts_ms : message.timestamp_ms();
        if (pending_event_times_.size() < 4096) pending_event_times_.push_back(ts);
      }
      if (pending_events_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
      pending_next_[partition] = message.offset() + 1;
      ++pending_events_;
    }
    bool due = pending_events_ > 0 &&
               (pending_events_ >= options_.max_batch_events ||
                std::chrono::steady_clock::now() >= oldest_pending_ + options_.flush_interval);
    if (!due) continue;
    Status st = Flush();
    if (st.ok()) {
      backoff = std::chrono::milliseconds(100);
      continue;
    }
    spdlog::warn("view {}: flush failed, rewinding to the stored offsets: {}", view, st.message());
    for (;;) {
      std::this_thread::sleep_for(backoff);  // the store is down; do not spin on it
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      Status rw = Rewind();
      if (rw.ok() || stop.load()) break;
      spdlog::warn("view {}: rewind failed: {}", view, rw.message());
    }
  }
  Status st = Flush();
  if (!st.ok()) spdlog::warn("view {}: final flush failed: {}", view, st.message());
  (void)consumer_->Close();
  return Status::Ok();
}

}  // namespace freshet
