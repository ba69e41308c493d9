#include "views/view_runner.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

#include "core/thread_name.h"
#include "sinks/postgres_sink.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"
#include "views/stock_levels.h"
#include "web/assets.h"

namespace freshet {

ProjectionRegistry StockProjections() {
  ProjectionRegistry projections;
  projections.Add("stock_levels", [] { return std::make_unique<StockLevelsProjection>(); });
  return projections;
}

Result<std::unique_ptr<Projection>> MakeViewProjection(const ViewSpec& spec, const ProjectionRegistry& projections) {
  if (spec.kind != ViewKind::kCpp) return std::unique_ptr<Projection>(std::make_unique<DeclarativeProjection>(spec));
  auto projection = projections.Make(spec.projection);
  if (!projection.ok()) return projection.status().WithContext("view " + spec.name + ": projection");
  if ((*projection)->table().view_name != spec.name)
    return Status::InvalidArgument("view " + spec.name + ": the C++ projection \"" + spec.projection +
                                   "\" writes the view \"" + (*projection)->table().view_name +
                                   "\"; give the definition that name");
  return projection;
}

Result<std::unique_ptr<Projection>> ViewRunner::MakeProjection(const ViewThread& view) const {
  if (view.spec) return MakeViewProjection(*view.spec, projections_);
  return projections_.Make("stock_levels");
}

Result<std::unique_ptr<ViewRunner>> ViewRunner::Create(const Config& config, const ProjectionRegistry& projections) {
  auto specs = ParseViewSpecs(config.views.definitions, "views.definitions");
  if (!specs.ok()) return specs.status();
  std::unique_ptr<ViewRunner> runner(new ViewRunner());
  runner->config_ = config;
  runner->projections_ = projections;
  runner->created_ms_ = NowMillis();
  for (const ViewSpec& spec : *specs) {
    for (const auto& store : spec.stores) {
      auto view = std::make_unique<ViewThread>();
      view->name = spec.name;
      view->store = store;
      view->spec = std::make_unique<ViewSpec>(spec);
      runner->views_.push_back(std::move(view));
    }
  }
  if (runner->views_.empty()) {
    if (!projections.Has("stock_levels"))
      return Status::InvalidArgument("views.definitions: no views defined (and no stock_levels projection registered)");
    auto view = std::make_unique<ViewThread>();
    view->name = "stock_levels";
    runner->views_.push_back(std::move(view));
  }
  // Opened here, before the HTTP server starts: /views/{name}/rows reads it
  // from the first request on.
  for (auto& view : runner->views_) {
    if (view->store != "rocksdb" || runner->rocksdb_) continue;
    auto store = RocksDbStore::Open(config.views.rocksdb_path, {});
    if (!store.ok()) return store.status().WithContext("views.rocksdb_path");
    runner->rocksdb_ = std::move(store.value());
  }
  if (runner->rocksdb_ && !config.views.advertise_url.empty())
    runner->owners_ = std::make_unique<ViewOwners>(KafkaClientOptions{config.kafka.brokers, config.kafka.client_properties},
                                                   config.views.owners_topic, config.views.group_id,
                                                   config.views.advertise_url);
  runner->feed_metrics_ = std::make_unique<FeedMetrics>(runner->metrics_);
  runner->offset_waiters_ = std::make_unique<OffsetWaiters>(kMaxOffsetWaits);
  std::set<std::string> names;
  for (const auto& view : runner->views_) names.insert(view->name);
  runner->live_queries_ = std::make_unique<LiveQueries>(config, names, runner->metrics_);
  ChangeFeedOptions feed_options;
  feed_options.max_pending = static_cast<size_t>(config.views.feed.max_pending);
  feed_options.history_changes = static_cast<size_t>(config.views.feed.history_changes);
  feed_options.batch_window = std::chrono::milliseconds(config.views.feed.batch_window_ms);
  feed_options.max_snapshot_rows = static_cast<size_t>(config.views.feed.max_snapshot_rows);
  for (auto& view : runner->views_) {
    view->metrics = std::make_unique<ViewMetrics>(runner->metrics_,
                                                  "view=\"" + view->name + "\",store=\"" + view->store + "\"");
    // Also checks, before anything starts, that every C++ view's projection
    // is registered under that name.
    auto projection = runner->MakeProjection(*view);
    if (!projection.ok()) return projection.status();
    TableSpec table = (*projection)->table();
    view->table = table;
    ChangeFeedOptions options = feed_options;
    // Other processes forward this process's partitions of the view.
    options.share_messages = runner->owners_ && view->store == "rocksdb";
    view->feed = std::make_unique<ChangeFeed>(view->name, view->store, table, options, *runner->feed_metrics_);
  }
  return runner;
}

ViewRunner::~ViewRunner() { Stop(); }

Status ViewRunner::Start() {
  auto producer = Producer::Create({config_.kafka.brokers, config_.kafka.client_properties});
  if (!producer.ok()) return producer.status();
  dead_letters_ = std::move(producer.value());
  if (owners_) {
    // Before the views start: they claim their partitions in it.
    FRESHET_RETURN_IF_ERROR(owners_->Start(config_.kafka.replication_factor));
    scale_out_reads_ = std::make_unique<ScaleOutReads>(*owners_, kScaleOutReadThreads);
    FeedRelayOptions relay;
    relay.token = config_.views.feed.token;
    relay.max_pending = static_cast<size_t>(config_.views.feed.max_pending);
    feed_relays_ = std::make_unique<FeedRelays>(*owners_, relay, *feed_metrics_);
    spdlog::info("views: scale-out reads on, advertised as {} (instance {})", owners_->url(), owners_->instance());
  }
  for (auto& view : views_) view->thread = std::thread([this, v = view.get()] {
      SetThreadName("view-" + v->name);
      RunView(*v);
    });
  live_queries_->Start();
  return Status::Ok();
}

void ViewRunner::Stop() {
  if (stopped_.exchange(true)) return;
  // Tell feed clients first: their close frames go out while the views flush.
  for (auto& view : views_) view->feed->CloseAll(kCloseGoingAway, "the view process is shutting down");
  if (feed_relays_) feed_relays_->Stop();  // before the owners they read stop
  live_queries_->Stop();
  stop_ = true;
  for (auto& view : views_) view->engine_stop = true;
  for (auto& view : views_)
    if (view->thread.joinable()) view->thread.join();
  scale_out_reads_.reset();  // its reads use the views and the store
  if (owners_) owners_->Stop();
  // Their checks read the views' store: answered (a last check) before it goes.
  offset_waiters_->Stop();
}

void ViewRunner::RunView(ViewThread& view) {
  bool realtime = !view.spec || view.spec->realtime;
  if (!realtime) {
    // A batch view yields the CPU to realtime views of the same process.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  }
  ViewEngineOptions options;
  options.kafka = {config_.kafka.brokers, config_.kafka.client_properties};
  const std::string topic = view.spec ? SourceTopic(*view.spec, config_.kafka.topic) : config_.kafka.topic;
  options.topic = topic;
  if (view.spec) {
    options.source = view.spec->source;
    options.parse_key = ReadsKeyJson(*view.spec);
  }
  options.group_id = config_.views.group_id + "." + view.name + (view.store == "rocksdb" ? ".rocksdb" : "");
  options.session_timeout_ms = config_.views.session_timeout_ms;
  options.flush_interval = std::chrono::milliseconds(view.spec ? view.spec->flush_interval_ms : config_.views.flush_interval_ms);
  options.max_batch_events = static_cast<size_t>(view.spec ? view.spec->max_batch_rows : config_.views.max_batch_rows);
  options.max_lag = std::chrono::milliseconds(view.spec ? view.spec->max_lag_ms : 5000);
  options.stop_on_error = view.spec && view.spec->stop_on_error;
  options.at_least_once = view.spec && !view.spec->exactly_once;
  options.dead_letter_topic = config_.kafka.dead_letter_topic;
  options.dead_letters = dead_letters_.get();
  options.feed = view.feed.get();
  options.on_commit = [this] { offset_waiters_->Notify(); };
  if (owners_ && view.store == "rocksdb") {
    options.on_partition = [this, &view](int32_t partition, PartitionState state) {
      {
        std::lock_guard lock(view.mu);
        if (state == PartitionState::kReleased) view.partitions.erase(partition);
        else view.partitions[partition] = state;
      }
      Status claimed = owners_->Claim(view.name, partition, state);
      if (!claimed.ok())
        spdlog::warn("view {}: claiming partition {} as {}: {}", view.name, partition, PartitionStateName(state),
                     claimed.message());
    };
  }

  auto backoff = std::chrono::milliseconds(500);
  while (!stop_.load()) {
    // Create checked that it can be made.
    std::unique_ptr<Projection> projection = std::move(MakeProjection(view).value());
    Result<std::unique_ptr<ViewStore>> store = Status::Internal("no store");
    if (view.store == "rocksdb") {
      bool rebuild = view.rebuild_requested.exchange(false);
      if (rebuild) {
        // The request stopped the previous engine; this one must run. Stop()
        // sets stop_ before engine_stop, so checking stop_ after clearing
        // cannot lose a shutdown.
        view.engine_stop = false;
        if (stop_) view.engine_stop = true;
      }
      auto rocks = RocksDbViewStore::Open(*rocksdb_, topic, projection->table(), rebuild);
      if (rocks.ok() && rebuild)
        spdlog::info("view {} (rocksdb): rebuilding from offset zero into {}", view.name, (*rocks)->table_name());
      store = rocks.ok() ? Result<std::unique_ptr<ViewStore>>(std::move(rocks.value())) : rocks.status();
    } else {
      auto sink = PostgresSink::Open(config_.postgres.url, topic, projection->table());
      store = sink.ok() ? Result<std::unique_ptr<ViewStore>>(std::make_unique<PostgresViewStore>(std::move(sink.value()), projection->table()))
                        : sink.status();
    }
    if (!store.ok()) {
      spdlog::warn("view {} ({}): {}; retrying in {} ms", view.name, view.store, store.status().message(), backoff.count());
      {
        std::lock_guard lock(view.mu);
        view.last.state = "waiting";
        view.last.error = store.status().message();
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
      continue;
    }
    ViewEngine engine(options, std::move(projection), std::move(store.value()), *view.metrics);
    {
      std::lock_guard lock(view.mu);
      view.engine = &engine;
    }
    Status st = engine.Run(view.engine_stop);
    ReleasePartitions(view);  // an engine that failed may not have been revoked
    std::lock_guard lock(view.mu);
    view.last = engine.Snapshot();
    view.engine = nullptr;
    if (st.ok() && view.rebuild_requested && !stop_) continue;  // stopped for a rebuild: reopen at once
    if (st.ok()) break;
    if (st.code() == StatusCode::kInvalidArgument) {  // stopped on a bad event: stays stopped
      view.last.state = "stopped";
      view.last.error = st.message();
      return;
    }
    spdlog::warn("view {}: {}; restarting its engine", view.name, st.message());
    view.last.state = "restarting";
    view.last.error = st.message();
    std::this_thread::sleep_for(backoff);
  }
  std::lock_guard lock(view.mu);
  view.last.state = "stopped";
}

HttpResponse ViewRunner::OwnersJson(const std::string& view) {
  if (!owners_)
    return ErrorResponse(404, "view " + view + ": scale-out is off in this process (set views.advertise_url)");
  auto count = SourcePartitionCount(
      [&] {
        for (auto& v : views_)
          if (v->name == view && v->spec) return SourceTopic(*v->spec, config_.kafka.topic);
        return config_.kafka.topic;
      }(),
      0);
  if (!count.ok()) return ErrorResponse(503, count.status().message());
  nlohmann::json partitions = nlohmann::json::object();
  for (int32_t p = 0; p < *count; ++p) {
    auto owner = owners_->Find(view, p);
    partitions[std::to_string(p)] =
        owner ? nlohmann::json{{"url", owner->url}, {"instance", owner->instance}, {"state", PartitionStateName(owner->state)}}
              : nlohmann::json{{"state", "unclaimed"}};
  }
  return JsonResponse(200, {{"view", view}, {"this_process", owners_->url()}, {"partitions", partitions}});
}

void ViewRunner::ReleasePartitions(ViewThread& view) {
  if (!owners_) return;
  std::map<int32_t, PartitionState> held;
  {
    std::lock_guard lock(view.mu);
    held.swap(view.partitions);
  }
  for (const auto& [partition, state] : held) (void)owners_->Claim(view.name, partition, PartitionState::kReleased);
}

ViewStatus ViewRunner::Snapshot(ViewThread& view) {
  std::lock_guard lock(view.mu);
  return view.engine ? view.engine->Snapshot() : view.last;
}

nlohmann::json ViewRunner::StatusJson(ViewThread& view) {
  ViewStatus s = Snapshot(view);
  nlohmann::json offsets = nlohmann::json::object(), lag = nlohmann::json::object();
  for (const auto& [p, next] : s.next_offsets) offsets[std::to_string(p)] = next;
  for (const auto& [p, l] : s.lag) lag[std::to_string(p)] = l;
  if (s.building && s.state == "running") s.state = "building";
  nlohmann::json out = {{"view", view.name},       {"store", view.store},    {"state", s.state},       {"next_offsets", offsets},
                        {"lag", lag},              {"stale", s.stale},       {"last_flush_ms", s.last_flush_ms},
                        {"events", view.metrics->events.value()},
                        {"dead_letters", view.metrics->dead_letters.value()}};
  // From the histogram's buckets: an upper bound, not an exact percentile.
  // Since the process started (a catch-up at start stays in it for good):
  const Histogram& visible = view.metrics->visible_seconds;
  if (visible.count() > 0)
    out["event_to_visible_ms"] = {{"p50_at_most", visible.Quantile(0.5) * 1000},
                                  {"p99_at_most", visible.Quantile(0.99) * 1000},
                                  {"events", visible.count()}};
  // ...and over the last minute that had events, with when that was: what a
  // user can act on.
  const int64_t now = NowMillis();
  {
    constexpr int64_t kWindowMs = 60000;
    std::lock_guard lock(view.visible_mu);
    auto& snapshots = view.visible_snapshots;
    std::vector<uint64_t> counts = visible.BucketCounts();
    if (snapshots.empty()) snapshots.emplace_back(created_ms_, std::vector<uint64_t>(counts.size(), 0));
    // The baseline: the newest snapshot at least a window old (else the oldest).
    while (snapshots.size() >= 2 && now - snapshots[1].first >= kWindowMs) snapshots.pop_front();
    const auto& [since, before] = snapshots.front();
    std::vector<uint64_t> window(counts.size(), 0);
    uint64_t events = 0;
    for (size_t i = 0; i < counts.size() && i < before.size(); ++i) {
      window[i] = counts[i] >= before[i] ? counts[i] - before[i] : 0;
      events += window[i];
    }
    if (events > 0)
      view.visible_recent = {{"p50_at_most", visible.QuantileOf(window, 0.5) * 1000},
                             {"p99_at_most", visible.QuantileOf(window, 0.99) * 1000},
                             {"events", events},
                             {"window_ms", now - since},
                             {"measured_at_ms", now}};
    if (now - snapshots.back().first >= 1000) snapshots.emplace_back(now, std::move(counts));
    if (!view.visible_recent.is_null()) out["event_to_visible_recent_ms"] = view.visible_recent;
  }
  out["now_ms"] = now;  // the server's clock when this status was taken
  if (!s.error.empty()) out["error"] = s.error;
  if (!s.waiting_for.empty()) out["waiting_for"] = s.waiting_for;
  if (!s.log_start.empty()) {
    nlohmann::json starts = nlohmann::json::object();
    for (const auto& [p, start] : s.log_start) starts[std::to_string(p)] = start;
    out["source_log_start"] = starts;  // partitions whose log lost its beginning
  }
  if (!s.rebuild.empty()) out["rebuild"] = nlohmann::json::parse(s.rebuild, nullptr, false);
  if (view.spec) {
    out["version"] = view.spec->version;
    out["table"] = view.spec->name + "__v" + view.spec->version;
    out["definition"] = view.spec->definition;
  }
  return out;
}

void ViewRunner::HandleRows(ViewThread& view, const HttpRequest& req, HttpReply reply) {
  auto key = req.query.find("key");
  auto prefix = req.query.find("prefix");
  if ((key == req.query.end()) == (prefix == req.query.end()))
    return reply(ErrorResponse(400, "give exactly one of key=a/b or prefix=a/"));
  RowsQuery query;
  if (key != req.query.end()) query.key = key->second;
  else query.prefix = prefix->second;
  if (auto l = req.query.find("limit"); l != req.query.end()) {
    char* end = nullptr;
    long n = std::strtol(l->second.c_str(), &end, 10);
    if (l->second.empty() || *end != '\0' || n < 1 || n > 10000)
      return reply(ErrorResponse(400, "limit: expected an integer from 1 to 10000"));
    query.limit = static_cast<size_t>(n);
  }
  if (auto m = req.query.find("min_offset"); m != req.query.end()) {
    auto colon = m->second.find(':');
    char* end1 = nullptr;
    char* end2 = nullptr;
    std::string p = m->second.substr(0, colon), o = colon == std::string::npos ? "" : m->second.substr(colon + 1);
    query.wait_partition = static_cast<int32_t>(std::strtol(p.c_str(), &end1, 10));
    query.wait_offset = std::strtoll(o.c_str(), &end2, 10);
    if (p.empty() || o.empty() || *end1 != '\0' || *end2 != '\0' || query.wait_partition < 0 || query.wait_offset < 0)
      return reply(ErrorResponse(400, "min_offset: expected partition:offset, e.g. 3:1042"));
  }
  // partitions=1,5,9: another view process asks for this one's shares of
  // the partitions it serves (ScaleOutReads).
  std::set<int32_t> asked;
  bool forwarded = false;
  if (auto f = req.query.find("partitions"); f != req.query.end()) {
    forwarded = true;
    auto partitions = ParsePartitionList(f->second);
    if (!partitions.ok()) return reply(ErrorResponse(400, partitions.status().message()));
    asked = *partitions;
  }
  std::string topic = view.spec ? SourceTopic(*view.spec, config_.kafka.topic) : config_.kafka.topic;
  if (scale_out_reads_ && !forwarded) {
    auto count = SourcePartitionCount(topic, 0);
    if (!count.ok()) return reply(ErrorResponse(503, "topic " + topic + ": " + count.status().message()));
    // A reader waiting for a partition the topic does not have: say so now.
    if (query.wait_partition >= *count)
      return reply(ErrorResponse(400, "min_offset: partition " + std::to_string(query.wait_partition) +
                                          " does not exist: topic " + topic + " has " + std::to_string(*count) +
                                          " partitions"));
    std::string encoded = query.key.empty() ? RocksDbViewStore::KeyFromUrl(query.prefix)
                                            : SharesOf(RocksDbViewStore::KeyFromUrl(query.key));
    size_t limit = query.limit;
    return scale_out_reads_->Read(view.name, view.table, *count, std::move(query),
                                  [this, &view, encoded, limit](const std::set<int32_t>& partitions) {
                                    return ReadOwnShares(view, partitions, encoded, limit);
                                  },
                                  std::move(reply));
  }
  auto answer = [this, &view, query, asked, forwarded]() {
    auto own = ReadOwnShares(view, asked, query.key.empty() ? RocksDbViewStore::KeyFromUrl(query.prefix)
                                                            : SharesOf(RocksDbViewStore::KeyFromUrl(query.key)),
                             query.limit);
    if (!own.ok()) {
      HttpResponse r = ErrorResponse(HttpStatusFor(own.status()), own.status().message());
      if (r.status == 503) r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    if (forwarded) return JsonResponse(200, ShareAnswerJson(*own));
    nlohmann::json rows = nlohmann::json::array();
    for (auto& [k, v] : MergeShares(view.table, std::move(own->shares), query.limit)) {
      nlohmann::json row = RocksDbViewStore::RowJson(k, "{}");
      row["value"] = std::move(v);
      rows.push_back(std::move(row));
    }
    nlohmann::json offsets = nlohmann::json::object();
    for (const auto& [p, next] : own->next_offsets) offsets[std::to_string(p)] = next;
    return JsonResponse(200, {{"view", view.name}, {"table", own->table}, {"rows", rows}, {"next_offsets", offsets}});
  };
  int32_t wait_partition = query.wait_partition;
  int64_t wait_offset = query.wait_offset;
  auto reached = [this, &view, topic, wait_partition, wait_offset] {
    if (wait_partition < 0) return true;
    auto table = rocksdb_->ResolveAlias(view.name);
    if (!table.ok()) return false;
    auto offsets = rocksdb_->LoadOffsets(*table, topic);
    if (!offsets.ok()) return false;
    auto it = offsets->find(wait_partition);
    return it != offsets->end() && it->second > wait_offset;
  };
  if (reached()) return reply(answer());
  // Read-your-writes: wait (bounded) until the view has applied the offset
  // the writer returned. The waiters check again at every commit of an
  // engine (on_commit), on their own thread: no thread per reader.
  OffsetWaiters::Wait wait;
  // A partition the topic does not have never reaches any offset: say so
  // now instead of after the wait. (If the broker cannot tell, wait.)
  wait.admit = [this, topic, wait_partition]() -> Status {
    auto count = SourcePartitionCount(topic, wait_partition);
    if (!count.ok() || wait_partition < *count) return Status::Ok();
    return Status::InvalidArgument("min_offset: partition " + std::to_string(wait_partition) +
                                   " does not exist: topic " + topic + " has " + std::to_string(*count) +
                                   " partition" + (*count == 1 ? "" : "s") + " (0-" + std::to_string(*count - 1) + ")");
  };
  wait.reached = reached;
  wait.done = [reply, answer, wait_partition, wait_offset](const Status& st) {
    if (st.ok()) return reply(answer());
    if (st.code() == StatusCode::kTimeout)
      return reply(ErrorResponse(504, "the view has not reached partition " + std::to_string(wait_partition) +
                                          " offset " + std::to_string(wait_offset) + " within 5 s"));
    reply(ErrorResponse(HttpStatusFor(st), st.message()));
  };
  wait.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  if (Status held = offset_waiters_->Add(std::move(wait)); !held.ok())
    return reply(ErrorResponse(HttpStatusFor(held), held.message()));
}

Result<ShareAnswer> ViewRunner::ReadOwnShares(ViewThread& view, const std::set<int32_t>& partitions,
                                              const std::string& encoded_prefix, size_t limit) {
  // Another process's read of partitions it believes are ours: each must
  // still be, and caught up (a moved partition's rows here are stale).
  if (scale_out_reads_ && !partitions.empty()) {
    std::lock_guard lock(view.mu);
    for (int32_t p : partitions) {
      auto it = view.partitions.find(p);
      if (it == view.partitions.end() || it->second != PartitionState::kServing || !owners_->ServedHere(view.name, p))
        return Status::Unavailable("view " + view.name + ": partition " + std::to_string(p) +
                                   " is not served by this process (" + owners_->url() + ") now; retry");
    }
  }
  // Readers follow the view's alias: the live version, also while a new one
  // is being built, and its offsets.
  auto table = rocksdb_->ResolveAlias(view.name);
  if (!table.ok()) return table.status();
  const std::string topic = view.spec ? SourceTopic(*view.spec, config_.kafka.topic) : config_.kafka.topic;
  auto offsets_of = [&](const std::map<int32_t, int64_t>& all) {
    std::map<int32_t, int64_t> out;
    for (const auto& [p, next] : all)
      if (partitions.empty() || partitions.count(p)) out[p] = next;
    return out;
  };
  // Rows and offsets commit together, but are read apart: a write landing
  // in between would pair newer rows with older offsets. Such a write
  // changes the offsets, so read again until they held still.
  for (int attempt = 0;; ++attempt) {
    auto before = rocksdb_->LoadOffsets(*table, topic);
    if (!before.ok()) return before.status();
    auto shares = RocksDbViewStore::ReadShares(*rocksdb_, *table, encoded_prefix, partitions, limit);
    if (!shares.ok()) return shares.status();
    auto after = rocksdb_->LoadOffsets(*table, topic);
    if (!after.ok()) return after.status();
    ShareAnswer out;
    out.next_offsets = offsets_of(*after);
    if (out.next_offsets != offsets_of(*before)) {
      if (attempt < 20) continue;
      return Status::Unavailable("view " + view.name + ": its rows changed under 20 reads in a row; retry");
    }
    out.table = *table;
    out.shares = std::move(*shares);
    return out;
  }
}

Result<int> ViewRunner::SourcePartitionCount(const std::string& topic, int32_t partition) {
  std::lock_guard lock(partition_counts_mu_);
  auto now = std::chrono::steady_clock::now();
  auto it = partition_counts_.find(topic);
  // Partitions can be added to a topic: ask the broker again about one
  // beyond the known count, at most every few seconds.
  if (it != partition_counts_.end() &&
      (partition < it->second.first || now - it->second.second < std::chrono::seconds(5)))
    return it->second.first;
  auto count = PartitionCount({config_.kafka.brokers, config_.kafka.client_properties}, topic, std::chrono::seconds(2));
  if (!count.ok()) return count.status();
  partition_counts_[topic] = {*count, now};
  return *count;
}

void ViewRunner::HandleRebuild(const std::vector<ViewThread*>& matching, const HttpRequest& req, HttpReply reply) {
  if (req.method != "POST") return reply(ErrorResponse(405, "rebuild: use POST"));
  if (auto refused = CheckToken(req)) return reply(std::move(*refused));
  std::string store = "rocksdb";
  if (auto s = req.query.find("store"); s != req.query.end()) store = s->second;
  if (store != "rocksdb")
    return reply(ErrorResponse(400, "store: only the RocksDB copy is rebuilt inside the view process; rebuild the "
                                    "Postgres copy with `freshet rebuild VIEW --config FILE`"));
  for (ViewThread* v : matching) {
    if (v->store != "rocksdb") continue;
    if (Snapshot(*v).building) return reply(ErrorResponse(409, "view " + v->name + " is already building a new version"));
    // The engine stops after its next flush; RunView reopens the store
    // with a new version beside the live one.
    v->rebuild_requested = true;
    v->engine_stop = true;
    return reply(JsonResponse(202, {{"view", v->name}, {"store", "rocksdb"}, {"state", "rebuild requested"}}));
  }
  reply(ErrorResponse(404, "view " + matching.front()->name + " has no RocksDB copy"));
}

std::optional<HttpResponse> ViewRunner::CheckToken(const HttpRequest& req) const {
  return CheckBearerToken(req, config_.views.feed.token);
}

WebSocketAccept ViewRunner::HandleWebSocket(const HttpRequest& req, std::shared_ptr<WebSocket> socket) {
  const std::string prefix = "/views/";
  if (req.path.rfind(prefix, 0) == 0 && req.path.size() > prefix.size() + 5 &&
      req.path.compare(req.path.size() - 5, 5, "/feed") == 0) {
    if (auto refusal = CheckToken(req)) return WebSocketAccept::Refuse(*refusal);
    return HandleFeed(req.path.substr(prefix.size(), req.path.size() - prefix.size() - 5), req, std::move(socket));
  }
  if (req.path == "/sql/feed") {
    if (auto refusal = CheckToken(req)) return WebSocketAccept::Refuse(*refusal);
    return live_queries_->Attach(std::move(socket));
  }
  return WebSocketAccept::Refuse(ErrorResponse(404, "no WebSocket endpoint at " + req.path +
                                                        " (there are /views/{name}/feed and /sql/feed)"));
}

WebSocketAccept ViewRunner::HandleFeed(const std::string& name, const HttpRequest& req,
                                       std::shared_ptr<WebSocket> socket) {
  ViewThread* chosen = nullptr;
  std::string wanted_store;
  if (auto s = req.query.find("store"); s != req.query.end()) {
    wanted_store = s->second;
    if (wanted_store != "rocksdb" && wanted_store != "postgres")
      return WebSocketAccept::Refuse(ErrorResponse(400, "store: expected rocksdb or postgres, got \"" + wanted_store + "\""));
  }
  bool known = false;
  for (auto& view : views_) {
    if (view->name != name) continue;
    known = true;
    if (!wanted_store.empty() ? view->store == wanted_store : (!chosen || view->store == "rocksdb")) chosen = view.get();
  }
  if (!known) return WebSocketAccept::Refuse(ErrorResponse(404, "no such view: " + name));
  if (!chosen) return WebSocketAccept::Refuse(ErrorResponse(404, "view " + name + " has no " + wanted_store + " copy"));
  if (chosen->spec && chosen->spec->kind == ViewKind::kAggregate && chosen->spec->source.changelog())
    return WebSocketAccept::Refuse(ErrorResponse(
        400, "view " + name + " aggregates a changelog when it is read (in its SQL view), so it has no change feed of "
             "its groups: follow it with live SQL (/sql/feed) instead"));

  FeedRequest request;
  auto key = req.query.find("key");
  auto prefix = req.query.find("prefix");
  if (key != req.query.end() && prefix != req.query.end())
    return WebSocketAccept::Refuse(ErrorResponse(400, "give at most one of key=a/b or prefix=a/"));
  if (key != req.query.end()) {
    if (key->second.empty()) return WebSocketAccept::Refuse(ErrorResponse(400, "key: must not be empty"));
    request.filter = {RocksDbViewStore::KeyFromUrl(key->second), true};
  } else if (prefix != req.query.end()) {
    request.filter = {RocksDbViewStore::KeyFromUrl(prefix->second), false};
  }
  if (auto from = req.query.find("from"); from != req.query.end()) {
    auto offsets = ParseFeedOffsets(from->second);
    if (!offsets.ok()) return WebSocketAccept::Refuse(ErrorResponse(400, offsets.status().message()));
    request.from = *offsets;
  }
  if (auto batch = req.query.find("batch"); batch != req.query.end()) {
    if (batch->second != "0" && batch->second != "1")
      return WebSocketAccept::Refuse(ErrorResponse(400, "batch: expected 0 or 1"));
    request.batch = batch->second == "1";
  }
  if (auto listed = req.query.find("partitions"); listed != req.query.end()) {
    auto partitions = ParsePartitionList(listed->second);
    if (!partitions.ok()) return WebSocketAccept::Refuse(ErrorResponse(400, partitions.status().message()));
    request.partitions = *partitions;
  }
  if (auto shares = req.query.find("shares"); shares != req.query.end()) {
    if (shares->second != "0" && shares->second != "1")
      return WebSocketAccept::Refuse(ErrorResponse(400, "shares: expected 0 or 1"));
    request.shares = shares->second == "1";
    if (request.shares && chosen->store != "rocksdb")
      return WebSocketAccept::Refuse(ErrorResponse(400, "shares=1: only a RocksDB copy keeps partition shares"));
  }
  if (feed_metrics_->connected.load() >= config_.views.feed.max_clients) {
    HttpResponse busy = ErrorResponse(503, "too many feed clients (views.feed.max_clients = " +
                                               std::to_string(config_.views.feed.max_clients) + ")");
    busy.headers.push_back({"Retry-After", "5"});
    return WebSocketAccept::Refuse(busy);
  }
  WebSocketAccept accept;
  if (feed_relays_ && chosen->store == "rocksdb" && request.partitions.empty()) {
    // Scale-out: the whole view, relayed from the partitions' owners.
    std::string topic = chosen->spec ? SourceTopic(*chosen->spec, config_.kafka.topic) : config_.kafka.topic;
    auto count = SourcePartitionCount(topic, 0);
    if (!count.ok()) {
      HttpResponse r = ErrorResponse(503, "topic " + topic + ": " + count.status().message());
      r.headers.emplace_back("Retry-After", "1");
      return WebSocketAccept::Refuse(r);
    }
    std::string filter_query;
    if (key != req.query.end()) filter_query = "key=" + PercentEncode(key->second);
    if (prefix != req.query.end()) filter_query = "prefix=" + PercentEncode(prefix->second);
    accept.callbacks = feed_relays_->Attach(chosen->name, chosen->table, *count, std::move(filter_query),
                                            std::move(socket), std::move(request));
    return accept;
  }
  if (owners_ && !request.partitions.empty()) {
    // Another process forwards these partitions: they must be served here.
    std::lock_guard lock(chosen->mu);
    for (int32_t p : request.partitions) {
      auto it = chosen->partitions.find(p);
      if (it == chosen->partitions.end() || it->second != PartitionState::kServing ||
          !owners_->ServedHere(chosen->name, p)) {
        HttpResponse r = ErrorResponse(503, "view " + name + ": partition " + std::to_string(p) +
                                                " is not served by this process (" + owners_->url() + ") now; retry");
        r.headers.emplace_back("Retry-After", "1");
        return WebSocketAccept::Refuse(r);
      }
    }
  }
  accept.callbacks = chosen->feed->Attach(std::move(socket), std::move(request));
  return accept;
}

void ViewRunner::HandleHttp(HttpRequest&& req, HttpReply reply) {
  // The dashboard: web/ files, embedded at build time.
  std::string file = req.path == "/" ? "index.html" : req.path.substr(1);
  for (const WebAsset* a = kWebAssets; a->name; ++a)
    if (file == a->name)
      // Notebooks on other origins (Observable) import freshet.js from here.
      return reply(HttpResponse{200, a->content_type, a->body,
                                {{"Cache-Control", "no-cache"}, {"Access-Control-Allow-Origin", "*"}}});
  if (req.path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}}));
  if (req.path == "/metrics") return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics_.RenderPrometheus(), {}});
  if (req.path == "/views") {
    nlohmann::json list = nlohmann::json::array();
    for (auto& view : views_) list.push_back(StatusJson(*view));
    return reply(JsonResponse(200, {{"views", list}}));
  }
  const std::string prefix = "/views/";
  if (req.path.rfind(prefix, 0) == 0) {
    std::string rest = req.path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string name = rest.substr(0, slash);
    std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    std::vector<ViewThread*> matching;
    for (auto& view : views_)
      if (view->name == name) matching.push_back(view.get());
    if (!matching.empty()) {
      if (what == "status" || what.empty()) {
        // The Postgres copy first (it is listed first); every store under "stores".
        nlohmann::json out = StatusJson(*matching.front());
        if (matching.size() > 1) {
          out["stores"] = nlohmann::json::object();
          for (ViewThread* v : matching) out["stores"][v->store] = StatusJson(*v);
        }
        return reply(JsonResponse(200, out));
      }
      if (what == "rows") {
        for (ViewThread* v : matching)
          if (v->store == "rocksdb") return HandleRows(*v, req, std::move(reply));
        return reply(ErrorResponse(404, "view " + name + " has no RocksDB copy; add \"rocksdb\" to its \"stores\""));
      }
      if (what == "rebuild") return HandleRebuild(matching, req, std::move(reply));
      if (what == "owners") return reply(OwnersJson(name));
      return reply(ErrorResponse(404, "no such endpoint for view " + name + ": " + what));
    }
    return reply(ErrorResponse(404, "no such view: " + name));
  }
  reply(ErrorResponse(404, "no such endpoint: " + req.path));
}

}  // namespace freshet
