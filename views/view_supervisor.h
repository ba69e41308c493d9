// ViewSupervisor: runs every view of a view process, each (view, store)
// pair on its own thread with its own consumer group
// ("<views.group_id>.<view>", plus ".rocksdb" for the RocksDB copy) and
// engine, restarted after errors it cannot ride out (a store or broker
// down), stopped for good when the view stops on a bad event. With
// scale-out (views.advertise_url) it claims, for the other processes to
// see, the partitions its engines hold (views/view_owners.h).
//
// The view process's HTTP API (views/view_http_api.h) and WebSocket
// endpoints (live/live_endpoints.h) read the views it supervises; the
// process is put together in views/view_runner.h.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/kafka.h"
#include "core/metrics.h"
#include "live/change_feed.h"
#include "sinks/rocksdb_store.h"
#include "views/projection_registry.h"
#include "views/view_engine.h"
#include "views/view_owners.h"
#include "views/view_spec.h"

namespace freshet {

// The projection a view runs: for a "cpp" view the registered C++ one
// (whose table must carry the view's name), else the definition's own.
Result<std::unique_ptr<Projection>> MakeViewProjection(const ViewSpec& spec,
                                                       const ProjectionRegistry& projections);

// One (view, store) pair. Set up by Create; the fields below `partitions`
// are the supervisor's own.
struct SupervisedView {
  std::string name;
  std::string store = "postgres";  // or "rocksdb"
  std::unique_ptr<ViewSpec> spec;  // null: the built-in stock_levels C++ projection
  std::unique_ptr<ViewMetrics> metrics;
  std::unique_ptr<ChangeFeed> feed;
  TableSpec table;  // the projection's, for merging partition shares
  // With scale-out: the partitions this process's engine holds, and how
  // far along each is (guarded by mu).
  std::map<int32_t, PartitionState> partitions;
  std::mutex mu;

  ViewEngine* engine = nullptr;  // while running (guarded by mu)
  ViewStatus last;               // when not running (guarded by mu)
  std::thread thread;
  std::atomic<bool> engine_stop{false};        // set by Stop, and to restart for a rebuild
  std::atomic<bool> rebuild_requested{false};  // RequestRebuild
};

class ViewSupervisor {
 public:
  // Validates the definitions (errors name the view and field), opens the
  // RocksDB database if a view has a RocksDB copy, and prepares every view
  // and its change feed; nothing is started.
  static Result<std::unique_ptr<ViewSupervisor>> Create(const Config& config,
                                                        const ProjectionRegistry& projections,
                                                        MetricsRegistry& metrics);
  ~ViewSupervisor();  // Stop()
  ViewSupervisor(const ViewSupervisor&) = delete;
  ViewSupervisor& operator=(const ViewSupervisor&) = delete;

  // Called after every store commit of any engine (set before Start).
  void set_on_commit(std::function<void()> on_commit) { on_commit_ = std::move(on_commit); }
  // Starts the owners' tail (scale-out) and one thread per view.
  Status Start();
  // Flushes every view, leaves the groups, and stops tailing the owners.
  // Idempotent.
  void Stop();

  const Config& config() const { return config_; }
  const std::vector<std::unique_ptr<SupervisedView>>& views() const { return views_; }
  // Every store of the view `name` (none: no such view).
  std::vector<SupervisedView*> Find(const std::string& name) const;
  // The view's status now (its engine's, or the last one's).
  ViewStatus Snapshot(SupervisedView& view);
  // The topic a view reads.
  std::string SourceTopicOf(const SupervisedView& view) const;
  // Rebuilds a RocksDB copy from offset zero beside the live one, swapped in
  // once caught up: kConflict if it is already building.
  Status RequestRebuild(SupervisedView& view);
  // With scale-out: whether this process serves `partition` of `view` now
  // (its engine holds it, caught up, and the owners topic says so).
  bool ServesNow(SupervisedView& view, int32_t partition);
  // The partition count of `topic`, cached; asked again of the broker (at
  // most every 5 s) when `partition` is beyond the cached count.
  Result<int> SourcePartitionCount(const std::string& topic, int32_t partition);

  RocksDbStore* rocksdb() const { return rocksdb_.get(); }  // null: no RocksDB copies
  ViewOwners* owners() const { return owners_.get(); }      // null: scale-out is off
  FeedMetrics& feed_metrics() { return *feed_metrics_; }

 private:
  ViewSupervisor() = default;
  void RunView(SupervisedView& view);
  ViewEngineOptions EngineOptions(SupervisedView& view);
  Result<std::unique_ptr<ViewStore>> OpenStore(SupervisedView& view, const TableSpec& table);
  Result<std::unique_ptr<Projection>> MakeProjection(const SupervisedView& view) const;
  // Gives back the partitions an engine held when it stopped.
  void ReleasePartitions(SupervisedView& view);

  Config config_;
  ProjectionRegistry projections_;
  std::unique_ptr<FeedMetrics> feed_metrics_;
  std::unique_ptr<DeadLetterSink> dead_letters_;
  std::unique_ptr<RocksDbStore> rocksdb_;  // opened by Create when a view asks for it
  std::unique_ptr<ViewOwners> owners_;  // scale-out (views.advertise_url set, and a view has a RocksDB copy)
  std::function<void()> on_commit_;
  std::mutex partition_counts_mu_;
  std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>>
      partition_counts_;  // topic -> (count, when asked)
  std::vector<std::unique_ptr<SupervisedView>> views_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace freshet
