#include "views/view_supervisor.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/thread_name.h"
#include "sinks/postgres_sink.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"
#include "views/stock_levels.h"

namespace freshet {

ProjectionRegistry StockProjections() {
  ProjectionRegistry projections;
  projections.Add("stock_levels", [] { return std::make_unique<StockLevelsProjection>(); });
  return projections;
}

Result<std::unique_ptr<Projection>> MakeViewProjection(const ViewSpec& spec,
                                                       const ProjectionRegistry& projections) {
  if (spec.kind != ViewKind::kCpp)
    return std::unique_ptr<Projection>(std::make_unique<DeclarativeProjection>(spec));
  auto projection = projections.Make(spec.projection);
  if (!projection.ok()) return projection.status().WithContext("view " + spec.name + ": projection");
  if ((*projection)->table().view_name != spec.name)
    return Status::InvalidArgument("view " + spec.name + ": the C++ projection \"" + spec.projection +
                                   "\" writes the view \"" + (*projection)->table().view_name +
                                   "\"; give the definition that name");
  return projection;
}

Result<std::unique_ptr<Projection>> ViewSupervisor::MakeProjection(const SupervisedView& view) const {
  if (view.spec) return MakeViewProjection(*view.spec, projections_);
  return projections_.Make("stock_levels");
}

Result<std::unique_ptr<ViewSupervisor>> ViewSupervisor::Create(const Config& config,
                                                               const ProjectionRegistry& projections,
                                                               MetricsRegistry& metrics) {
  auto specs = ParseViewSpecs(config.views.definitions, "views.definitions");
  if (!specs.ok()) return specs.status();
  std::unique_ptr<ViewSupervisor> supervisor(new ViewSupervisor());
  supervisor->config_ = config;
  supervisor->projections_ = projections;
  for (const ViewSpec& spec : *specs) {
    for (const auto& store : spec.stores) {
      auto view = std::make_unique<SupervisedView>();
      view->name = spec.name;
      view->store = store;
      view->spec = std::make_unique<ViewSpec>(spec);
      supervisor->views_.push_back(std::move(view));
    }
  }
  if (supervisor->views_.empty()) {
    if (!projections.Has("stock_levels"))
      return Status::InvalidArgument(
          "views.definitions: no views defined (and no stock_levels projection registered)");
    auto view = std::make_unique<SupervisedView>();
    view->name = "stock_levels";
    supervisor->views_.push_back(std::move(view));
  }
  // Opened here, before the HTTP server starts: /views/{name}/rows reads it
  // from the first request on.
  for (auto& view : supervisor->views_) {
    if (view->store != "rocksdb" || supervisor->rocksdb_) continue;
    auto store = RocksDbStore::Open(config.views.rocksdb_path, {});
    if (!store.ok()) return store.status().WithContext("views.rocksdb_path");
    supervisor->rocksdb_ = std::move(store.value());
  }
  if (supervisor->rocksdb_ && !config.views.advertise_url.empty())
    supervisor->owners_ = std::make_unique<ViewOwners>(
        KafkaClientOptions{config.kafka.brokers, config.kafka.client_properties}, config.views.owners_topic,
        config.views.group_id, config.views.advertise_url);
  supervisor->feed_metrics_ = std::make_unique<FeedMetrics>(metrics);
  ChangeFeedOptions feed_options;
  feed_options.max_pending = static_cast<size_t>(config.views.feed.max_pending);
  feed_options.history_changes = static_cast<size_t>(config.views.feed.history_changes);
  feed_options.batch_window = std::chrono::milliseconds(config.views.feed.batch_window_ms);
  feed_options.max_snapshot_rows = static_cast<size_t>(config.views.feed.max_snapshot_rows);
  for (auto& view : supervisor->views_) {
    view->metrics =
        std::make_unique<ViewMetrics>(metrics, "view=\"" + view->name + "\",store=\"" + view->store + "\"");
    // Also checks, before anything starts, that every C++ view's projection
    // is registered under that name.
    auto projection = supervisor->MakeProjection(*view);
    if (!projection.ok()) return projection.status();
    TableSpec table = (*projection)->table();
    view->table = table;
    ChangeFeedOptions options = feed_options;
    // Other processes forward this process's partitions of the view.
    options.share_messages = supervisor->owners_ && view->store == "rocksdb";
    view->feed =
        std::make_unique<ChangeFeed>(view->name, view->store, table, options, *supervisor->feed_metrics_);
  }
  return supervisor;
}

ViewSupervisor::~ViewSupervisor() { Stop(); }

Status ViewSupervisor::Start() {
  auto producer = Producer::Create({config_.kafka.brokers, config_.kafka.client_properties});
  if (!producer.ok()) return producer.status();
  dead_letters_ = KafkaDeadLetters(std::move(producer.value()));
  if (owners_) {
    // Before the views start: they claim their partitions in it.
    FRESHET_RETURN_IF_ERROR(owners_->Start(config_.kafka.replication_factor));
    spdlog::info("views: scale-out on, advertised as {} (instance {})", owners_->url(), owners_->instance());
  }
  for (auto& view : views_)
    view->thread = std::thread([this, v = view.get()] {
      SetThreadName("view-" + v->name);
      RunView(*v);
    });
  return Status::Ok();
}

void ViewSupervisor::Stop() {
  if (stopped_.exchange(true)) return;
  stop_ = true;
  for (auto& view : views_) view->engine_stop = true;
  for (auto& view : views_)
    if (view->thread.joinable()) view->thread.join();
  if (owners_) owners_->Stop();
}

std::vector<SupervisedView*> ViewSupervisor::Find(const std::string& name) const {
  std::vector<SupervisedView*> out;
  for (const auto& view : views_)
    if (view->name == name) out.push_back(view.get());
  return out;
}

std::string ViewSupervisor::SourceTopicOf(const SupervisedView& view) const {
  return view.spec ? SourceTopic(*view.spec, config_.kafka.topic) : config_.kafka.topic;
}

Status ViewSupervisor::RequestRebuild(SupervisedView& view) {
  if (Snapshot(view).building)
    return Status::Conflict("view " + view.name + " is already building a new version");
  // The engine stops after its next flush; RunView reopens the store with
  // a new version beside the live one.
  view.rebuild_requested = true;
  view.engine_stop = true;
  return Status::Ok();
}

bool ViewSupervisor::ServesNow(SupervisedView& view, int32_t partition) {
  if (!owners_) return false;
  std::lock_guard lock(view.mu);
  auto it = view.partitions.find(partition);
  return it != view.partitions.end() && it->second == PartitionState::kServing &&
         owners_->ServedHere(view.name, partition);
}

ViewEngineOptions ViewSupervisor::EngineOptions(SupervisedView& view) {
  ViewEngineOptions options;
  options.kafka = {config_.kafka.brokers, config_.kafka.client_properties};
  options.topic = SourceTopicOf(view);
  if (view.spec) {
    options.source = view.spec->source;
    options.parse_key = ReadsKeyJson(*view.spec);
  }
  options.group_id = config_.views.group_id + "." + view.name + (view.store == "rocksdb" ? ".rocksdb" : "");
  options.session_timeout_ms = config_.views.session_timeout_ms;
  options.flush_interval =
      std::chrono::milliseconds(view.spec ? view.spec->flush_interval_ms : config_.views.flush_interval_ms);
  options.max_batch_events =
      static_cast<size_t>(view.spec ? view.spec->max_batch_rows : config_.views.max_batch_rows);
  options.max_lag = std::chrono::milliseconds(view.spec ? view.spec->max_lag_ms : 5000);
  options.stop_on_error = view.spec && view.spec->stop_on_error;
  options.at_least_once = view.spec && !view.spec->exactly_once;
  options.dead_letter_topic = config_.kafka.dead_letter_topic;
  options.dead_letters = dead_letters_.get();
  options.feed = view.feed.get();
  options.on_commit = [this] {
    if (on_commit_) on_commit_();
  };
  if (owners_ && view.store == "rocksdb") {
    options.on_partition = [this, &view](int32_t partition, PartitionState state) {
      {
        std::lock_guard lock(view.mu);
        if (state == PartitionState::kReleased)
          view.partitions.erase(partition);
        else
          view.partitions[partition] = state;
      }
      Status claimed = owners_->Claim(view.name, partition, state);
      if (!claimed.ok())
        spdlog::warn("view {}: claiming partition {} as {}: {}", view.name, partition,
                     PartitionStateName(state), claimed.message());
    };
  }

  return options;
}

Result<std::unique_ptr<ViewStore>> ViewSupervisor::OpenStore(SupervisedView& view, const TableSpec& table) {
  const std::string topic = SourceTopicOf(view);
  if (view.store == "rocksdb") {
    bool rebuild = view.rebuild_requested.exchange(false);
    if (rebuild) {
      // The request stopped the previous engine; this one must run. Stop()
      // sets stop_ before engine_stop, so checking stop_ after clearing
      // cannot lose a shutdown.
      view.engine_stop = false;
      if (stop_) view.engine_stop = true;
    }
    auto rocks = RocksDbViewStore::Open(*rocksdb_, topic, table, rebuild);
    if (!rocks.ok()) return rocks.status();
    if (rebuild)
      spdlog::info("view {} (rocksdb): rebuilding from offset zero into {}", view.name,
                   (*rocks)->table_name());
    return std::unique_ptr<ViewStore>(std::move(rocks.value()));
  }
  auto sink = PostgresSink::Open(config_.postgres.url, topic, table);
  if (!sink.ok()) return sink.status();
  return std::unique_ptr<ViewStore>(std::make_unique<PostgresViewStore>(std::move(sink.value()), table));
}

void ViewSupervisor::RunView(SupervisedView& view) {
  bool realtime = !view.spec || view.spec->realtime;
  if (!realtime) {
    // A batch view yields the CPU to realtime views of the same process.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  }
  ViewEngineOptions options = EngineOptions(view);
  auto backoff = std::chrono::milliseconds(500);
  while (!stop_.load()) {
    // Create checked that it can be made.
    std::unique_ptr<Projection> projection = std::move(MakeProjection(view).value());
    Result<std::unique_ptr<ViewStore>> store = OpenStore(view, projection->table());
    if (!store.ok()) {
      spdlog::warn("view {} ({}): {}; retrying in {} ms", view.name, view.store, store.status().message(),
                   backoff.count());
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

void ViewSupervisor::ReleasePartitions(SupervisedView& view) {
  if (!owners_) return;
  std::map<int32_t, PartitionState> held;
  {
    std::lock_guard lock(view.mu);
    held.swap(view.partitions);
  }
  for (const auto& [partition, state] : held)
    (void)owners_->Claim(view.name, partition, PartitionState::kReleased);
}

ViewStatus ViewSupervisor::Snapshot(SupervisedView& view) {
  std::lock_guard lock(view.mu);
  return view.engine ? view.engine->Snapshot() : view.last;
}

Result<int> ViewSupervisor::SourcePartitionCount(const std::string& topic, int32_t partition) {
  std::lock_guard lock(partition_counts_mu_);
  auto now = std::chrono::steady_clock::now();
  auto it = partition_counts_.find(topic);
  // Partitions can be added to a topic: ask the broker again about one
  // beyond the known count, at most every few seconds.
  if (it != partition_counts_.end() &&
      (partition < it->second.first || now - it->second.second < std::chrono::seconds(5)))
    return it->second.first;
  auto count = PartitionCount({config_.kafka.brokers, config_.kafka.client_properties}, topic,
                              std::chrono::seconds(2));
  if (!count.ok()) return count.status();
  partition_counts_[topic] = {*count, now};
  return *count;
}

}  // namespace freshet
