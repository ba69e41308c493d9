// ScaleOutReads: a RocksDB view's reads when several view processes share
// the view's partitions (views.advertise_url set; docs/scale-out.md).
//
// Each process holds the shares (views/partition_rows.h) of the partitions
// it serves. A read asks, for every partition of the source topic, the
// process that serves it (itself included), merges the shares into whole
// rows in key order and applies the limit, so every process gives the same
// answer. A partition that no process serves right now (it is moving, or its
// new owner is still catching up), or an owner that does not answer, makes
// the read 503 with Retry-After: a reader gets a right answer, a 503, or a
// wait (min_offset), never a partial one.
//
// The owners are asked at once, each on one of a few threads of its own
// (blocking HTTP, one kept-alive connection per peer and thread), not on
// the HTTP server's.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/http.h"
#include "core/http_client.h"
#include "core/status.h"
#include "sinks/table.h"
#include "views/partition_rows.h"
#include "views/view_owners.h"

namespace freshet {

// GET /views/{name}/rows, as parsed.
struct RowsQuery {
  std::string key;     // key=a/b, or
  std::string prefix;  // prefix=a/ (one of the two is set)
  size_t limit = 100;
  int32_t wait_partition = -1;  // min_offset=partition:offset, -1: none
  int64_t wait_offset = -1;
  // The query string of a read of `partitions` only, sent to their owner.
  std::string ForwardTarget(const std::string& view, const std::vector<int32_t>& partitions) const;
};

// What one process answers for the partitions it was asked for.
struct ShareAnswer {
  std::string table;
  std::vector<RowShare> shares;
  std::map<int32_t, int64_t> next_offsets;
};
nlohmann::json ShareAnswerJson(const ShareAnswer& answer);

class ScaleOutReads {
 public:
  // Reads this process's own shares of `partitions` (kUnavailable if one of
  // them is no longer served here).
  using LocalRead = std::function<Result<ShareAnswer>(const std::set<int32_t>& partitions)>;

  ScaleOutReads(const ViewOwners& owners, int threads);
  ~ScaleOutReads();  // finishes the reads already queued, joins the threads
  ScaleOutReads(const ScaleOutReads&) = delete;
  ScaleOutReads& operator=(const ScaleOutReads&) = delete;

  // Answers a client's read of `view` (whose source topic has
  // `partition_count` partitions) through `reply`, later, from another thread.
  void Read(const std::string& view, const TableSpec& table, int partition_count, RowsQuery query,
            LocalRead local, HttpReply reply);

 private:
  using Peers = std::map<std::string, std::unique_ptr<HttpClient>>;
  struct PendingRead;
  void Run();
  // Asks `url` for its shares of `read` (in place when it is this process);
  // the last owner to answer replies.
  void AskOwner(const std::shared_ptr<PendingRead>& read, const std::string& url, Peers& peers);

  const ViewOwners& owners_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void(Peers&)>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  static constexpr size_t kMaxQueued = 1024;
};

}  // namespace freshet
