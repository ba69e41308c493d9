// ViewHttpApi: a view process's HTTP endpoints (the WebSocket ones are in
// live/live_endpoints.h):
//   GET  /views, /views/{name}, /views/{name}/status   status of every store
//   GET  /views/{name}/rows?key=|prefix=[&limit=][&min_offset=p:o]
//   GET  /views/{name}/owners                          who serves what (scale-out)
//   POST /views/{name}/rebuild                         RocksDB copy from offset zero
//   GET  /healthz, /metrics, and the dashboard page at / (files of web/)
//
// A read that asks for min_offset waits in OffsetWaiters (no thread per
// reader), woken at every store commit; with scale-out a read asks every
// partition's owner through ScaleOutReads.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/http.h"
#include "core/metrics.h"
#include "views/offset_waiters.h"
#include "views/scale_out_reads.h"
#include "views/view_supervisor.h"

namespace freshet {

class ViewHttpApi {
 public:
  ViewHttpApi(ViewSupervisor& supervisor, MetricsRegistry& metrics);
  ~ViewHttpApi();  // Stop()
  ViewHttpApi(const ViewHttpApi&) = delete;
  ViewHttpApi& operator=(const ViewHttpApi&) = delete;

  // Starts the threads that ask other processes (with scale-out).
  void Start();
  // Answers the readers still waiting (a last check) and stops. Idempotent.
  void Stop();
  // A store committed: readers waiting for a min_offset look again.
  void Committed() { offset_waiters_.Notify(); }

  void Handle(HttpRequest&& request, HttpReply reply);

 private:
  // Snapshots (ms, bucket counts) of a view's metrics->visible_seconds,
  // about one a second while the status is asked for, and the recent bound
  // they gave (StatusJson's "event_to_visible_recent_ms").
  struct VisibleWindow {
    std::mutex mu;
    std::deque<std::pair<int64_t, std::vector<uint64_t>>> snapshots;
    nlohmann::json recent;
  };

  nlohmann::json StatusJson(SupervisedView& view);
  void VisibleRecent(SupervisedView& view, int64_t now, nlohmann::json* out);
  void HandleRows(SupervisedView& view, const HttpRequest& request, HttpReply reply);
  // This process's shares of `partitions` (every one when empty) of the
  // rows under `encoded_prefix`; with scale-out, kUnavailable unless each
  // partition is served here now.
  Result<ShareAnswer> ReadOwnShares(SupervisedView& view, const std::set<int32_t>& partitions,
                                    const std::string& encoded_prefix, size_t limit);
  // The same from one version of the view (kNotFound once it is dropped).
  Result<ShareAnswer> ReadSharesOfTable(SupervisedView& view, const std::string& table,
                                        const std::set<int32_t>& partitions,
                                        const std::string& encoded_prefix, size_t limit);
  // GET /views/{name}/owners: which process serves which partition.
  HttpResponse OwnersJson(const std::string& view);
  // POST /views/{name}/rebuild?store=rocksdb: the RocksDB copy is rebuilt
  // from offset zero beside the live one, inside this process (which holds
  // the database), and swapped in once caught up.
  void HandleRebuild(const std::vector<SupervisedView*>& matching, const HttpRequest& request,
                     HttpReply reply);

  ViewSupervisor& supervisor_;
  const Config& config_;
  MetricsRegistry& metrics_;
  const int64_t created_ms_;  // the baseline of the first event-to-visible window
  std::map<const SupervisedView*, std::unique_ptr<VisibleWindow>> visible_;  // fixed after construction
  // Readers waiting for a min_offset (HandleRows), answered as flushes land.
  static constexpr size_t kMaxOffsetWaits = 256;
  OffsetWaiters offset_waiters_{kMaxOffsetWaits};
  // Scale-out (the supervisor has owners): reads of other processes' shares.
  static constexpr int kScaleOutReadThreads = 4;
  std::unique_ptr<ScaleOutReads> scale_out_reads_;
  bool stopped_ = false;
};

}  // namespace freshet
