#include "views/view_engine.h"

#include <spdlog/spdlog.h>

#include <limits>
#include <thread>

namespace freshet {

ViewMetrics::ViewMetrics(MetricsRegistry& registry, const std::string& labels)
    : events(registry.AddCounter("freshet_view_events_total", "Events applied", labels)),
      dead_letters(registry.AddCounter("freshet_view_dead_letters_total",
                                       "Events sent to the dead-letter topic", labels)),
      flushes(registry.AddCounter("freshet_view_flushes_total", "Committed flushes", labels)),
      flush_failures(
          registry.AddCounter("freshet_view_flush_failures_total", "Failed flushes (rewound)", labels)),
      flush_seconds(registry.AddHistogram("freshet_view_flush_seconds", "Time to write one flush",
                                          LatencyBuckets(), labels)),
      visible_seconds(registry.AddHistogram("freshet_view_event_to_visible_seconds",
                                            "From the event's timestamp to its flush committing",
                                            LatencyBuckets(), labels)),
      records_decoded(
          registry.AddCounter("freshet_view_records_decoded_total",
                              "Records in a registry format (Avro, Protobuf, JSON Schema) this view "
                              "decoded itself",
                              labels)),
      records_decoded_by_another_view(registry.AddCounter(
          "freshet_view_records_decoded_by_another_view_total",
          "Records in a registry format this view took decoded from another view of the process", labels)),
      decode_pacing_waits(registry.AddCounter(
          "freshet_view_decode_pacing_waits_total",
          "Times this view, catching up, waited for a slower view of the process reading the same topic so "
          "that they share decodes",
          labels)) {}

ViewEngine::ViewEngine(ViewEngineOptions options, std::unique_ptr<Projection> projection,
                       std::unique_ptr<ViewStore> store, ViewMetrics& metrics)
    : options_(std::move(options)),
      projection_(std::move(projection)),
      store_(std::move(store)),
      env_(options_.env ? *options_.env : KafkaEngineEnv()),
      clock_(env_.clock()),
      metrics_(metrics),
      writes_("flush-" + projection_->table().view_name) {
  stage_shares_ = store_->keeps_partition_shares() && !projection_->SeparatePartitions();
}

ViewEngine::~ViewEngine() = default;

ViewStatus ViewEngine::Snapshot() const {
  std::lock_guard lock(status_mu_);
  return status_;
}

void ViewEngine::PublishStatus() {
  ViewStatus s;
  s.state = "running";
  s.next_offsets = stored_next_;
  s.last_flush_ms = last_flush_ms_;
  int64_t total_lag = 0;
  for (const auto& [partition, next] : stored_next_) {
    int64_t high = consumer_ ? consumer_->CachedHighWatermark(options_.topic, partition) : -1;
    if (high < 0) continue;
    int64_t lag = std::max<int64_t>(0, high - std::max<int64_t>(next, 0));
    // Read to the end with nothing pending: what remains is a transaction
    // marker, not an event.
    auto end = at_end_.find(partition);
    if (end != at_end_.end() && end->second && pending_events_ == 0) lag = 0;
    s.lag[partition] = lag;
    total_lag += lag;
  }
  // Transaction markers count in the lag; a view is stale only when it has
  // not flushed for longer than it may lag while something is waiting.
  s.stale = total_lag > 1 && clock_.WallMillis() - last_flush_ms_ > options_.max_lag.count();
  s.building = store_->building();
  // A rebuild runs in another process; it reports through the registry.
  auto now = clock_.Now();
  if (now - last_rebuild_check_ >= std::chrono::seconds(2)) {
    last_rebuild_check_ = now;
    auto progress = store_->RebuildProgress();
    if (progress.ok()) rebuild_progress_ = *progress;
  }
  s.rebuild = rebuild_progress_;
  s.log_start = log_start_;
  s.waiting_for = waiting_for_;
  std::lock_guard lock(status_mu_);
  status_ = std::move(s);
}

Result<std::map<int32_t, int64_t>> ViewEngine::StoredOffsets(const std::vector<int32_t>& partitions) {
  if (!options_.at_least_once) return store_->LoadOffsets();
  return consumer_->CommittedOffsets(options_.topic, partitions, std::chrono::seconds(10));
}

Status ViewEngine::OnAssign(std::vector<TopicPartitionOffset>& assigned) {
  InRebalance scope(in_rebalance_);
  // The write in flight must land first: offsets are read from the store.
  if (Status previous = FinishFlush(); !previous.ok()) {
    spdlog::warn("view {}: flush failed: {}; rewinding", projection_->table().view_name, previous.message());
    rewind_needed_ = true;
  }
  std::vector<int32_t> partitions;
  for (const auto& tp : assigned) partitions.push_back(tp.partition);
  auto stored = StoredOffsets(partitions);
  if (!stored.ok()) return stored.status();
  for (auto& tp : assigned) {
    auto it = stored->find(tp.partition);
    // Nothing stored: start at the log's first offset, known from
    // CheckSourceLog. "Beginning" makes librdkafka look it up first: the
    // first record of a fresh topic came ~500 ms after assign at
    // "beginning" and 1-2 ms after assign at 0, on 2.0.2 and 2.8.0 alike
    // (bench/librdkafka-quirks).
    auto first = log_first_.find(tp.partition);
    tp.offset = it != stored->end()         ? it->second
                : first != log_first_.end() ? first->second
                                            : kOffsetBeginning;
    stored_next_[tp.partition] = it == stored->end() ? -1 : it->second;
    pending_next_[tp.partition] = stored_next_[tp.partition];
    at_end_[tp.partition] = false;
    serving_[tp.partition] = false;
    serve_from_.erase(tp.partition);  // asked after the rebalance (AnnounceServing)
    last_flush_ms_ = clock_.WallMillis();
    spdlog::info("view {}: assigned partition {} from offset {}", projection_->table().view_name,
                 tp.partition, it == stored->end() ? std::string("beginning") : std::to_string(it->second));
    if (options_.on_partition) options_.on_partition(tp.partition, PartitionState::kLoading);
  }
  return Status::Ok();
}

void ViewEngine::AnnounceServing() {
  if (!options_.on_partition) return;
  for (auto& [partition, serving] : serving_) {
    if (serving) continue;
    if (!serve_from_.count(partition)) {
      // Readers may be sent here once the rows reach the log's end as it
      // was after the assignment (or once the partition is read to its end,
      // for a log that ends in transaction markers). Asked here, not inside
      // the rebalance callback, where a slow broker call held up the group.
      auto marks = consumer_->QueryWatermarks(options_.topic, partition, std::chrono::seconds(2));
      serve_from_[partition] = marks.ok() ? marks->second : std::numeric_limits<int64_t>::max();
    }
    // Readers of a version being built get the live one, which this engine
    // does not write: nothing to catch up with.
    bool caught_up =
        store_->building() || stored_next_[partition] >= serve_from_[partition] ||
        (at_end_[partition] && !in_flight_ && pending_next_[partition] == stored_next_[partition]);
    if (!caught_up) continue;
    serving = true;
    options_.on_partition(partition, PartitionState::kServing);
  }
}

void ViewEngine::OnRevoke(const std::vector<TopicPartitionOffset>& revoked) {
  InRebalance scope(in_rebalance_);
  // Write what we have while we still own the partitions; if that fails the
  // next owner simply starts from the stored offsets.
  Status st = Flush();
  if (!st.ok()) {
    spdlog::warn("view {}: flush on revoke failed: {}", projection_->table().view_name, st.message());
    // The partitions we keep lose their pending rows too: read them again.
    rewind_needed_ = true;
  }
  DropPending();
  pending_events_ = 0;
  for (const auto& tp : revoked) {
    if (options_.on_partition && serving_.count(tp.partition))
      options_.on_partition(tp.partition, PartitionState::kReleased);
    serving_.erase(tp.partition);
    serve_from_.erase(tp.partition);
    stored_next_.erase(tp.partition);
    pending_next_.erase(tp.partition);
    at_end_.erase(tp.partition);
  }
}

void ViewEngine::StageShares(int32_t partition) {
  if (partition == share_partition_) return;
  if (share_partition_ >= 0 && projection_->pending_rows() > 0) {
    std::vector<RowWrite> rows = projection_->TakePending();
    for (RowWrite& row : rows) row.partition = share_partition_;
    staged_rows_.insert(staged_rows_.end(), std::make_move_iterator(rows.begin()),
                        std::make_move_iterator(rows.end()));
  }
  share_partition_ = partition;
}

std::vector<RowWrite> ViewEngine::TakeRows() {
  if (!stage_shares_) return projection_->TakePending();
  StageShares(-1);
  return std::move(staged_rows_);
}

void ViewEngine::DropPending() {
  (void)projection_->TakePending();
  staged_rows_.clear();
  share_partition_ = -1;
}

Status ViewEngine::Flush() {
  FRESHET_RETURN_IF_ERROR(FinishFlush());
  FRESHET_RETURN_IF_ERROR(StartFlush());
  return FinishFlush();
}

Status ViewEngine::StartFlush() {
  if (pending_events_ == 0) return Status::Ok();
  auto batch = std::make_unique<InFlightWrite>();
  for (const auto& [partition, next] : pending_next_) {
    int64_t stored = stored_next_[partition];
    if (next != stored) batch->advances.push_back({partition, stored, next});
  }
  batch->started = clock_.Now();
  // Dead letters must be durable before the offsets that skip them are.
  if (options_.dead_letters) {
    Status dl = options_.dead_letters->Flush(std::chrono::seconds(30));
    if (!dl.ok()) {
      DropPending();
      pending_events_ = 0;
      pending_event_times_.clear();
      return dl.WithContext("dead-letter topic " + options_.dead_letter_topic);
    }
  }
  batch->next = pending_next_;
  batch->event_times = std::move(pending_event_times_);
  pending_event_times_.clear();
  // A version being built is not what readers see: its rows are not news.
  batch->feeding = options_.feed && options_.feed->recording() && !store_->building();
  pending_events_ = 0;
  // The write runs beside the consuming thread, which goes on applying the
  // next batch: the flush was half of the time a view spent catching up.
  // Everything else that touches the store waits for it (FinishFlush).
  InFlightWrite* b = batch.get();
  b->done = writes_.Submit([this, b, rows = TakeRows()] {
    Status written = store_->Write(rows, options_.at_least_once ? std::vector<OffsetAdvance>{} : b->advances,
                                   b->feeding ? &b->changes : nullptr);
    // Readers waiting for these offsets need not wait for FinishFlush.
    if (written.ok() && options_.on_commit) options_.on_commit();
    return written;
  });
  in_flight_ = std::move(batch);
  return Status::Ok();
}

bool ViewEngine::WriteDone() const {
  return in_flight_ && in_flight_->done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Status ViewEngine::FinishFlush() {
  if (!in_flight_) return Status::Ok();
  std::unique_ptr<InFlightWrite> batch = std::move(in_flight_);
  Status st = batch->done.get();
  if (!st.ok()) {
    metrics_.flush_failures.Add();
    // What was applied after this batch builds on it: dropped too; the
    // caller rewinds to the stored offsets.
    DropPending();
    pending_events_ = 0;
    pending_event_times_.clear();
    return st;
  }
  double seconds = std::chrono::duration<double>(clock_.Now() - batch->started).count();
  metrics_.flush_seconds.Observe(seconds);
  int64_t now = clock_.WallMillis();
  for (int64_t ts : batch->event_times)
    metrics_.visible_seconds.Observe(static_cast<double>(now - ts) / 1000.0);
  metrics_.flushes.Add();
  if (options_.at_least_once && !batch->advances.empty()) {
    // After the rows: a crash in between replays this flush (at least once).
    std::map<int32_t, int64_t> next;
    for (const auto& a : batch->advances) next[a.partition] = a.next_offset;
    Status committed = consumer_->CommitOffsets(options_.topic, next);
    if (!committed.ok())
      spdlog::warn("view {}: rows written but {}; a restart replays them (at_least_once)",
                   projection_->table().view_name, committed.message());
  }
  if (batch->feeding) options_.feed->Committed(std::move(batch->changes), stored_next_, batch->next);
  stored_next_ = batch->next;
  last_flush_ms_ = now;
  PublishStatus();
  if (!in_rebalance_) AnnounceServing();
  return Status::Ok();
}

Status ViewEngine::Rewind() {
  // After a failed flush our idea of the stored offsets may be stale (another
  // process may have taken over): read them again, then seek every owned
  // partition back to them.
  (void)FinishFlush();  // its failure is why we are here, or it landed
  DropPending();
  pending_events_ = 0;
  pending_event_times_.clear();
  std::vector<int32_t> partitions;
  for (const auto& [partition, next] : stored_next_) partitions.push_back(partition);
  auto stored = StoredOffsets(partitions);
  if (!stored.ok()) return stored.status();
  for (auto& [partition, next] : stored_next_) {
    auto it = stored->find(partition);
    next = it == stored->end() ? -1 : it->second;
    pending_next_[partition] = next;
    FRESHET_RETURN_IF_ERROR(consumer_->Seek(options_.topic, partition, next < 0 ? kOffsetBeginning : next));
  }
  return Status::Ok();
}

void ViewEngine::WaitForRegistry(const Status& why, const std::atomic<bool>& stop) {
  const std::string& view = projection_->table().view_name;
  if (waiting_for_.empty()) spdlog::warn("view {}: waiting for the schema registry: {}", view, why.message());
  waiting_for_ = "waiting for the schema registry: " + why.message();
  // What came before the record is good: make it visible while we wait.
  if (Status flushed = Flush(); !flushed.ok())
    spdlog::warn("view {}: flush before waiting failed: {}", view, flushed.message());
  PublishStatus();
  auto until = std::chrono::steady_clock::now() + registry_backoff_;  // a real wait, whatever the clock
  while (!stop.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  registry_backoff_ = std::min(registry_backoff_ * 2, std::chrono::milliseconds(5000));
  // Read the record (and anything after it on other partitions) again.
  if (Status rw = Rewind(); !rw.ok()) spdlog::warn("view {}: rewind failed: {}", view, rw.message());
}

Status ViewEngine::CheckSourceLog() {
  const std::string& view = projection_->table().view_name;
  log_start_.clear();
  log_first_.clear();
  std::vector<int32_t> partitions;
  for (int32_t partition = 0; partition < partition_count_; ++partition) {
    auto marks = consumer_->QueryWatermarks(options_.topic, partition, std::chrono::seconds(15));
    if (!marks.ok()) return marks.status();
    partitions.push_back(partition);
    log_first_[partition] = marks->first;
    if (marks->first > 0) log_start_[partition] = marks->first;
  }
  if (log_start_.empty()) return Status::Ok();
  auto stored = StoredOffsets(partitions);
  if (!stored.ok()) return stored.status();
  std::string gaps;
  for (const auto& [partition, start] : log_start_) {
    auto it = stored->find(partition);
    int64_t needed = it == stored->end() ? 0 : it->second;
    if (needed >= start) continue;
    gaps += (gaps.empty() ? "" : ", ") + std::string("partition ") + std::to_string(partition) +
            " starts at offset " + std::to_string(start) + " (the view needs " + std::to_string(needed) + ")";
  }
  if (gaps.empty()) return Status::Ok();
  if (options_.source.allow_incomplete_log) {
    spdlog::warn(
        "view {}: topic {} has lost its beginning ({}); starting from the earliest records left "
        "(source.allow_incomplete_log)",
        view, options_.topic, gaps);
    return Status::Ok();
  }
  return Status::InvalidArgument(
      "view " + view + " refuses to start: topic " + options_.topic +
      " has lost records it has not applied: " + gaps +
      ". Built from what is left, the view would silently differ from a replay of the whole log. Restore the "
      "records, or set \"source\": {\"allow_incomplete_log\": true} on the view to start from the earliest "
      "records left (normal for a topic with finite retention)");
}

Status ViewEngine::DeadLetter(const RawRecord& record, const std::string& error) {
  if (!options_.dead_letters) return Status::Internal("no dead-letter producer");
  OutgoingMessage m;
  m.topic = options_.dead_letter_topic;
  // As it was: a null key or a tombstone stays null.
  m.key = std::string(record.key.value_or(std::string_view()));
  m.value = std::string(record.value.value_or(std::string_view()));
  m.null_key = !record.key;
  m.null_value = !record.value;
  m.headers = {{"freshet.view", projection_->table().view_name},
               {"freshet.error", error},
               {"freshet.source.topic", std::string(record.topic)},
               {"freshet.source.partition", std::to_string(record.partition)},
               {"freshet.source.offset", std::to_string(record.offset)}};
  if (auto type = record.Header(kTypeHeader)) m.headers.push_back({kTypeHeader, std::string(*type)});
  FRESHET_RETURN_IF_ERROR(options_.dead_letters->Produce(m));
  metrics_.dead_letters.Add();
  return Status::Ok();
}

Status ViewEngine::MaybeSwapIn() {
  if (!store_->building() || pending_events_ > 0) return Status::Ok();
  auto now = clock_.Now();
  if (now - last_swap_check_ < std::chrono::seconds(1)) return Status::Ok();
  last_swap_check_ = now;
  std::vector<int32_t> all;
  for (int32_t p = 0; p < partition_count_; ++p) all.push_back(p);
  auto stored = StoredOffsets(all);
  if (!stored.ok()) return stored.status();
  for (int32_t p = 0; p < partition_count_; ++p) {
    if (at_end_.count(p) && at_end_[p]) continue;  // ours, read to its end and flushed
    // Another process's partition: caught up if its stored offset reaches
    // the end (a committed transaction's marker takes the last offset).
    auto marks = consumer_->QueryWatermarks(options_.topic, p, std::chrono::seconds(2));
    if (!marks.ok()) return Status::Ok();
    int64_t high = marks->second;
    auto it = stored->find(p);
    if (high > 0 && (it == stored->end() || it->second < high - 1)) return Status::Ok();
  }
  FRESHET_RETURN_IF_ERROR(store_->SwapIn());
  if (options_.on_commit) options_.on_commit();
  if (options_.feed) options_.feed->ResetAll("a new version of the view is live");
  return Status::Ok();
}

Status ViewEngine::Connect() {
  const std::string& view = projection_->table().view_name;
  KafkaClientOptions kafka = options_.kafka;
  kafka.properties["session.timeout.ms"] = std::to_string(options_.session_timeout_ms);
  // librdkafka's default heartbeat (3 s) would let a shorter session expire
  // between heartbeats: the group would rebalance forever.
  kafka.properties["heartbeat.interval.ms"] = std::to_string(std::max(100, options_.session_timeout_ms / 4));
  // Cooperative: a process joining or leaving moves only the partitions that
  // change hands, and the others keep being read (and, with scale-out,
  // served) through the rebalance. Every process of a group must agree.
  kafka.properties.emplace("partition.assignment.strategy", "cooperative-sticky");
  // At-least-once keeps its offsets in the group, so each version of the
  // view (each table) has a group of its own: a rebuilt table starts from
  // offset zero, and a process that follows it continues the builder's commits.
  std::string group = options_.group_id + (options_.at_least_once ? "." + store_->table_name() : "");
  auto consumer = env_.NewConsumer(kafka, group);
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(consumer.value());
  if (projection_->reads_records()) {
    decoder_ = std::make_unique<RecordDecoder>(options_.source, options_.parse_key);
    // Views of this process that read the same topic decode each record
    // once between them, from their first record, and keep together while
    // they catch up.
    auto log_end = [consumer = consumer_.get(), topic = options_.topic](int32_t partition) {
      return consumer->CachedHighWatermark(topic, partition);
    };
    decoder_->ShareDecodes(log_end, {&metrics_.records_decoded, &metrics_.records_decoded_by_another_view,
                                     &metrics_.decode_pacing_waits});
  }
  // Asked through the engine's own consumer: a client made only for this
  // would cost a connection and a metadata round trip at every start.
  auto count = consumer_->PartitionCount(options_.topic, std::chrono::seconds(15));
  if (!count.ok()) return count.status();
  partition_count_ = *count;
  if (Status log = CheckSourceLog(); !log.ok()) {
    spdlog::error("view {}: {}", view, log.message());
    PublishStatus();  // with the partitions that lost their beginning
    return log;
  }
  return consumer_->Subscribe(
      options_.topic, [this](std::vector<TopicPartitionOffset>& a) { return OnAssign(a); },
      [this](const std::vector<TopicPartitionOffset>& r) { OnRevoke(r); });
}

std::chrono::milliseconds ViewEngine::PollWait() const {
  auto wait = std::chrono::milliseconds(100);
  if (pending_events_ > 0) {
    auto due = oldest_pending_ + options_.flush_interval;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - clock_.Now());
    // Caught up means no message within a moment: then flush at once
    // instead of waiting out the interval (freshness).
    wait = std::max(std::chrono::milliseconds(0), std::min({wait, left, std::chrono::milliseconds(2)}));
  }
  if (options_.feed) wait = std::min(wait, options_.feed->TimeUntilDue());
  // Notice a finished write soon: its rows are visible, its status and
  // feed changes should be too.
  if (in_flight_) wait = std::min(wait, std::chrono::milliseconds(1));
  return wait;
}

Status ViewEngine::LandWriteInFlight(Consumer::PollOutcome outcome) {
  Status failed;
  // Idle, a finished write, or snapshots to serve (they read the store):
  // land the write in flight.
  bool idle = outcome != Consumer::PollOutcome::kMessage && pending_events_ == 0;
  if (in_flight_ && (idle || WriteDone() || (options_.feed && options_.feed->snapshots_wanted())))
    failed = FinishFlush();
  if (rewind_needed_) {
    rewind_needed_ = false;
    if (failed.ok()) failed = Status::Unavailable("a flush failed during a rebalance");
  }
  if (failed.ok() && idle) {
    PublishStatus();
    AnnounceServing();
    Status swap = MaybeSwapIn();
    if (!swap.ok()) spdlog::warn("view {}: {}", projection_->table().view_name, swap.message());
  }
  // Snapshots read the store: only with no write in flight, so that they
  // hold exactly the flushes the feed has been handed.
  if (options_.feed) options_.feed->Tick(in_flight_ ? nullptr : store_.get(), stored_next_);
  return failed;
}

ViewEngine::Applied ViewEngine::ApplyRecord(const RawRecord& message, const std::atomic<bool>& stop,
                                            Status* stopped) {
  const std::string& view = projection_->table().view_name;
  int32_t partition = message.partition;
  at_end_[partition] = false;
  if (!pending_next_.count(partition)) return Applied::kNothing;  // a message from before a revoke
  if (stage_shares_) StageShares(partition);
  int64_t event_ts = 0;
  bool skipped = false;
  Status st;
  try {
    if (decoder_) {
      SourceRecord record;
      st = decoder_->Decode(message, &record);
      // Only a schema registry that cannot be asked says kUnavailable.
      if (st.code() == StatusCode::kUnavailable) {
        WaitForRegistry(st, stop);
        return Applied::kNothing;
      }
      if (!waiting_for_.empty()) {
        spdlog::info("view {}: the schema registry answers again", view);
        waiting_for_.clear();
        registry_backoff_ = std::chrono::milliseconds(100);
        PublishStatus();
      }
      event_ts = record.ts_ms;
      skipped = st.ok() && record.change == SourceRecord::Change::kSkip;
      if (st.ok() && !skipped) st = projection_->ApplyRecord(record);
    } else {
      st = projection_->ApplyValue(message.value.value_or(std::string_view()), partition, message.offset,
                                   &event_ts);
    }
  } catch (const std::exception& e) {
    // One record must not take the process down (and again after every
    // restart): it is a bad record like any other.
    st = Status::InvalidArgument(std::string("could not apply the record: ") + e.what());
  }
  if (!st.ok()) {
    if (options_.stop_on_error) {
      // Stop before the bad event: what came before it is still written.
      pending_next_[partition] = message.offset;
      Status flushed = Flush();
      std::string reason = "stopped at partition " + std::to_string(partition) + " offset " +
                           std::to_string(message.offset) + ": " + st.message();
      spdlog::error("view {}: {}", view, reason);
      (void)consumer_->Close();
      if (!flushed.ok()) spdlog::warn("view {}: final flush failed: {}", view, flushed.message());
      *stopped = Status::InvalidArgument("view " + view + " " + reason);
      return Applied::kStopped;
    }
    Status dl = DeadLetter(message, st.message());
    if (!dl.ok()) {
      spdlog::warn("view {}: {}; rewinding", view, dl.message());
      DropPending();
      pending_events_ = 0;
      (void)Rewind();
      return Applied::kNothing;
    }
    spdlog::warn("view {}: partition {} offset {}: dead-lettered: {}", view, partition, message.offset,
                 st.message());
  } else if (!skipped) {
    metrics_.events.Add();
    int64_t ts = event_ts > 0 ? event_ts : message.timestamp_ms;
    if (pending_event_times_.size() < 4096) pending_event_times_.push_back(ts);
  }
  if (pending_events_ == 0) oldest_pending_ = clock_.Now();
  pending_next_[partition] = message.offset + 1;
  ++pending_events_;
  return Applied::kPending;
}

Status ViewEngine::FlushIfDue(Consumer::PollOutcome outcome, Status failed, const std::atomic<bool>& stop) {
  // A flush is due when the batch is full, when the oldest pending event
  // has waited flush_interval, or when nothing more is there to read.
  bool due = pending_events_ > 0 &&
             (pending_events_ >= options_.max_batch_events || outcome == Consumer::PollOutcome::kTimeout ||
              clock_.Now() >= oldest_pending_ + options_.flush_interval);
  if (!due && failed.ok()) return Status::Ok();
  if (failed.ok() && in_flight_ && !WriteDone() &&
      projection_->pending_rows() + staged_rows_.size() < options_.max_batch_events)
    return Status::Ok();  // keep applying while the store writes (see max_batch_events)
  // Land the previous write, then start this one: at most one in flight.
  Status st = failed;
  if (st.ok()) st = FinishFlush();
  if (st.ok()) st = StartFlush();
  if (st.ok()) {
    flush_backoff_ = std::chrono::milliseconds(100);
    return Status::Ok();
  }
  if (Status current = store_->StillCurrent(); current.code() == StatusCode::kConflict) {
    // Our table was swapped out by a rebuild: the runner reopens the
    // store, which follows the new table from its stored offsets.
    (void)FinishFlush();
    pending_events_ = 0;
    DropPending();
    (void)consumer_->Close();
    return current;
  }
  const std::string& view = projection_->table().view_name;
  spdlog::warn("view {}: flush failed, rewinding to the stored offsets: {}", view, st.message());
  for (;;) {
    std::this_thread::sleep_for(flush_backoff_);  // the store is down; do not spin on it
    flush_backoff_ = std::min(flush_backoff_ * 2, std::chrono::milliseconds(5000));
    Status rw = Rewind();
    if (rw.ok() || stop.load()) break;
    spdlog::warn("view {}: rewind failed: {}", view, rw.message());
  }
  return Status::Ok();
}

Status ViewEngine::Run(const std::atomic<bool>& stop) {
  const std::string& view = projection_->table().view_name;
  FRESHET_RETURN_IF_ERROR(Connect());
  flush_backoff_ = std::chrono::milliseconds(100);
  while (!stop.load()) {
    RawRecord message;
    int32_t eof_partition = -1;
    auto outcome = consumer_->Poll(PollWait(), &message, &eof_partition);
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
    if (*outcome == Consumer::PollOutcome::kPartitionEnd && pending_next_.count(eof_partition))
      at_end_[eof_partition] = true;
    Status failed = LandWriteInFlight(*outcome);
    if (failed.ok() && *outcome == Consumer::PollOutcome::kMessage) {
      Status stopped;
      Applied applied = ApplyRecord(message, stop, &stopped);
      if (applied == Applied::kStopped) return stopped;
      if (applied == Applied::kNothing) continue;
    }
    if (Status flushed = FlushIfDue(*outcome, failed, stop); flushed.code() == StatusCode::kConflict)
      return flushed;
  }
  Status st = Flush();
  if (!st.ok()) spdlog::warn("view {}: final flush failed: {}", view, st.message());
  (void)consumer_->Close();
  return Status::Ok();
}

}  // namespace freshet
