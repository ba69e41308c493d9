// ViewRunner: every view of a view process, each (view, store) pair on its
// own thread with its own consumer group ("<views.group_id>.<view>", plus
// ".rocksdb" for the RocksDB copy) and engine, restarted after
// errors it cannot ride out (a store or broker down), stopped for good when
// the view stops on a bad event. Serves the views' HTTP endpoints.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/websocket.h"
#include "sinks/rocksdb_store.h"
#include "live/sql_feed.h"
#include "views/offset_waiters.h"
#include "views/projection_registry.h"
#include "live/feed_relay.h"
#include "views/scale_out_reads.h"
#include "views/view_engine.h"
#include "views/view_spec.h"

namespace freshet {

// The projection a view runs: for a "cpp" view the registered C++ one
// (whose table must carry the view's name), else the definition's own.
Result<std::unique_ptr<Projection>> MakeViewProjection(const ViewSpec& spec, const ProjectionRegistry& projections);

class ViewRunner {
 public:
  // Validates the definitions (errors name the view and field), opens the
  // RocksDB database if a view has a RocksDB copy, and prepares one runner
  // per view; nothing is started.
  // C++ projections come from `projections`; with no definitions the view
  // process runs the registered "stock_levels" alone, if there is one.
  static Result<std::unique_ptr<ViewRunner>> Create(const Config& config,
                                                    const ProjectionRegistry& projections = StockProjections());
  ~ViewRunner();

  Status Start();
  void Stop();  // flushes every view and leaves the groups

  // GET /views, /views/{name}/status, /views/{name}/rows,
  // /views/{name}/owners (scale-out), /healthz,
  // POST /views/{name}/rebuild,
  // /metrics, and the dashboard page at / (files of web/).
  void HandleHttp(HttpRequest&& request, HttpReply reply);
  // WebSocket upgrades: GET /views/{name}/feed and GET /sql/feed
  // (docs/live-protocol.md).
  WebSocketAccept HandleWebSocket(const HttpRequest& request, std::shared_ptr<WebSocket> socket);
  MetricsRegistry& metrics() { return metrics_; }

 private:
  struct ViewThread {
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
    ViewEngine* engine = nullptr;    // while running
    ViewStatus last;                 // when not running
    std::thread thread;
    std::atomic<bool> engine_stop{false};        // set by Stop, and to restart for a rebuild
    std::atomic<bool> rebuild_requested{false};  // POST /views/{name}/rebuild
    // Snapshots (ms, bucket counts) of metrics->visible_seconds, about one a
    // second while the status is asked for, and the recent bound they gave
    // (StatusJson's "event_to_visible_recent_ms").
    std::mutex visible_mu;
    std::deque<std::pair<int64_t, std::vector<uint64_t>>> visible_snapshots;
    nlohmann::json visible_recent;

  };
  ViewRunner() = default;
  void RunView(ViewThread& view);
  Result<std::unique_ptr<Projection>> MakeProjection(const ViewThread& view) const;
  nlohmann::json StatusJson(ViewThread& view);
  ViewStatus Snapshot(ViewThread& view);
  void HandleRows(ViewThread& view, const HttpRequest& request, HttpReply reply);
  // This process's shares of `partitions` (every one when empty) of the
  // rows under `encoded_prefix`; with scale-out, kUnavailable unless each
  // partition is served here now.
  Result<ShareAnswer> ReadOwnShares(ViewThread& view, const std::set<int32_t>& partitions,
                                    const std::string& encoded_prefix, size_t limit);
  // GET /views/{name}/owners: which process serves which partition.
  HttpResponse OwnersJson(const std::string& view);
  // Gives back the partitions an engine held when it stopped.
  void ReleasePartitions(ViewThread& view);
  // The partition count of `topic`, cached; asked again of the broker (at
  // most every 5 s) when `partition` is beyond the cached count.
  Result<int> SourcePartitionCount(const std::string& topic, int32_t partition);
  // POST /views/{name}/rebuild?store=rocksdb: the RocksDB copy is rebuilt
  // from offset zero beside the live one, inside this process (which holds
  // the database), and swapped in once caught up.
  void HandleRebuild(const std::vector<ViewThread*>& matching, const HttpRequest& request, HttpReply reply);
  WebSocketAccept HandleFeed(const std::string& name, const HttpRequest& request, std::shared_ptr<WebSocket> socket);
  // Empty when the request carries the configured token (or none is set).
  std::optional<HttpResponse> CheckToken(const HttpRequest& request) const;

  Config config_;
  MetricsRegistry metrics_;
  std::unique_ptr<FeedMetrics> feed_metrics_;
  std::unique_ptr<LiveQueries> live_queries_;
  std::unique_ptr<Producer> dead_letters_;
  ProjectionRegistry projections_;
  std::unique_ptr<RocksDbStore> rocksdb_;  // opened by Create when a view asks for it
  // Scale-out (views.advertise_url set, and a view has a RocksDB copy).
  std::unique_ptr<ViewOwners> owners_;
  std::unique_ptr<ScaleOutReads> scale_out_reads_;
  std::unique_ptr<FeedRelays> feed_relays_;
  static constexpr int kScaleOutReadThreads = 4;
  // Readers waiting for a min_offset (HandleRows), answered as flushes land.
  static constexpr size_t kMaxOffsetWaits = 256;
  std::unique_ptr<OffsetWaiters> offset_waiters_;
  int64_t created_ms_ = 0;  // the baseline of the first event-to-visible window
  std::mutex partition_counts_mu_;
  std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>> partition_counts_;  // topic -> (count, when asked)
  std::vector<std::unique_ptr<ViewThread>> views_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace freshet
