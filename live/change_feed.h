// ChangeFeed: the WebSocket change feed of one view's store
// (GET /views/{name}/feed; the protocol is in docs/live-protocol.md).
//
// The view's engine hands every committed flush to the feed (Committed) and
// calls Tick between polls; both run on the engine's thread, so a snapshot
// read in Tick reflects exactly the flushes delivered before it, and every
// later change reaches the client after it. Nothing is sent before the
// store committed it.
//
// Backpressure: each client has a bounded queue on its socket; changes
// beyond it wait in a per-client pending list coalesced per key (the latest
// wins). A client with more than max_pending keys waiting gets a `reset`
// and a fresh snapshot, so a slow client costs at most max_pending entries.
//
// Fan-out: batch=1 clients that follow every row share one pre-built frame
// per batch_window (the outbox); with many clients the frame rate, not the
// bytes, is the cost. A client joins the outbox at its first flush after it
// went live, from the outbox's current end, so it never gets a change its
// snapshot or its resume already held.
//
// Resume: the last history_changes changes are kept (while a client is
// connected, and for a while after the last one leaves); a client that
// reconnects with `from` offsets the history still covers gets exactly the
// changes it missed instead of a snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/websocket.h"
#include "sinks/table.h"
#include "views/view_store.h"

namespace freshet {

struct ChangeFeedOptions {
  size_t max_pending = 10000;
  size_t history_changes = 100000;
  size_t max_snapshot_rows = 100000;
  size_t snapshot_chunk_rows = 500;
  size_t max_in_flight = 64;  // messages queued on one socket
  std::chrono::milliseconds heartbeat{5000};
  // Batch clients that follow every row get at most one frame per window:
  // the frame rate, not the bytes, is what costs with many clients.
  std::chrono::milliseconds batch_window{20};
  std::chrono::milliseconds keep_history_after_last_client{10 * 60 * 1000};
  // Also build each change's share message, for the feeds other processes
  // forward (scale-out; live/feed_relay.h).
  bool share_messages = false;
  const Clock* clock = nullptr;  // null: SystemClock(); tests give a ManualClock
};

// Process-wide feed metrics.
struct FeedMetrics {
  explicit FeedMetrics(MetricsRegistry& registry);
  Gauge& clients;
  Counter& messages;
  Counter& coalesced;
  Counter& resets;
  Counter& resumes;
  Counter& snapshots;
  Gauge& pending;  // changes waiting in clients' pending lists, all feeds
  std::atomic<int64_t> connected{0};
  std::atomic<int64_t> pending_changes{0};
  void ClientsChanged(int delta) { clients.Set(static_cast<double>(connected += delta)); }
  void PendingChanged(int64_t delta) { pending.Set(static_cast<double>(pending_changes += delta)); }
};

struct FeedFilter {
  std::string encoded;  // EncodeKey form; empty: every row
  bool exact = false;   // a key, not a prefix
  bool Matches(const std::string& encoded_key) const {
    return exact ? encoded_key == encoded : encoded_key.compare(0, encoded.size(), encoded) == 0;
  }
};

struct FeedRequest {
  FeedFilter filter;
  std::optional<std::map<int32_t, int64_t>> from;  // resume point: next offset per partition
  bool batch = false;                              // one "changes" message per flush
  // Another process forwarding this feed (live/feed_relay.h) asks for some
  // partitions only, and for each change as the partition's share of the
  // row, which it merges with the other partitions' shares itself.
  std::set<int32_t> partitions;  // empty: every partition
  bool shares = false;
  bool Wants(int32_t partition) const { return partitions.empty() || partitions.count(partition) > 0; }
};

class ChangeFeed {
 public:
  ChangeFeed(std::string view, std::string store, const TableSpec& table, ChangeFeedOptions options,
             FeedMetrics& metrics);
  ~ChangeFeed();

  // --- The engine's side, on its thread. ---
  // Whether the next flush should collect its committed rows.
  bool recording();
  // A flush committed: its rows, and the next offsets of the engine's
  // partitions before and after it.
  void Committed(std::vector<RowChange> changes, const std::map<int32_t, int64_t>& before,
                 const std::map<int32_t, int64_t>& after);
  // Between flushes: serves waiting snapshots from `store` (null while a
  // write is in flight: they wait for the next Tick) and sends heartbeats.
  // `offsets`: what the store holds for the engine's partitions.
  void Tick(ViewStore* store, const std::map<int32_t, int64_t>& offsets);
  // Every client starts over with a fresh snapshot, and the history is
  // dropped: a new version of the view went live.
  void ResetAll(const std::string& reason);
  // Whether clients wait for a snapshot (the next Tick reads the store).
  bool snapshots_wanted() const;
  // How long the engine may wait before the next Tick is due (a batch
  // frame is waiting for its window to end).
  std::chrono::milliseconds TimeUntilDue() const;

  // --- The server's side. ---
  WebSocketCallbacks Attach(std::shared_ptr<WebSocket> socket, FeedRequest request);
  void CloseAll(uint16_t code, const std::string& reason);
  size_t clients() const;

 private:
  struct Change {
    std::string key;  // encoded
    int32_t partition = -1;
    int64_t offset = -1;
    std::shared_ptr<const std::string> message;
    std::shared_ptr<const std::string> share_message;  // with share_messages
  };
  using ChangePtr = std::shared_ptr<const Change>;
  struct Client {
    std::shared_ptr<WebSocket> socket;
    FeedRequest request;
    bool opened = false;
    bool live = false;  // false: waiting for a snapshot
    std::list<ChangePtr> pending;
    std::unordered_map<std::string, std::list<ChangePtr>::iterator> pending_by_key;
    std::shared_ptr<const std::string> progress;  // sent once pending is empty
    bool in_outbox = false;                       // its changes since the last batch frame are in outbox_...
    size_t outbox_from = 0;                       // ...from this index on (it may have joined late)
  };

  void OnOpen(uint64_t id);
  // Sends a client the changes since its `from` (CanResume held; mu_ held).
  void Resume(Client& client);
  void Enqueue(Client& client, const ChangePtr& change);
  void Pump(Client& client);
  size_t InFlightLimit(const Client& client) const;
  void Reset(Client& client, const std::string& reason);
  void SendOutbox();  // mu_ held
  void ServeSnapshots(ViewStore& store, const std::map<int32_t, int64_t>& offsets);
  std::shared_ptr<const std::string> ProgressMessage(const std::map<int32_t, int64_t>& offsets) const;
  bool CanResume(const FeedRequest& request) const;
  // The key a slow client's pending changes coalesce by.
  static std::string PendingKey(const Client& client, const Change& change);
  static const std::shared_ptr<const std::string>& MessageFor(const Client& client, const Change& change) {
    return client.request.shares && change.share_message ? change.share_message : change.message;
  }
  void ServeShareSnapshots(ViewStore& store, const std::map<int32_t, int64_t>& offsets);

  const std::string view_;
  const std::string store_;
  const ChangeFeedOptions options_;
  const Clock& clock_;
  FeedMetrics& metrics_;
  std::string hello_;

  mutable std::mutex mu_;
  std::map<uint64_t, Client> clients_;
  uint64_t next_id_ = 1;
  bool snapshots_wanted_ = false;
  std::chrono::steady_clock::time_point last_client_left_{};
  std::chrono::steady_clock::time_point last_progress_{};
  // Batch fan-out: the changes since the last batch frame, sent to every
  // in_outbox client as one shared message once batch_window has passed.
  std::vector<ChangePtr> outbox_;
  std::chrono::steady_clock::time_point last_batch_sent_{};
  // History for resuming: every change at offsets >= floor_[p] up to
  // last_[p] (the next offset after the newest flush) is in history_.
  std::deque<std::vector<ChangePtr>> history_;
  size_t history_size_ = 0;
  std::map<int32_t, int64_t> floor_;
  std::map<int32_t, int64_t> last_;
};

// Parses "0:120,1:88" (partition:next offset pairs).
Result<std::map<int32_t, int64_t>> ParseFeedOffsets(const std::string& text);
// The first message of a feed: the view, its store and its columns.
nlohmann::json FeedHello(const std::string& view, const std::string& store, const TableSpec& table);
// {"partition": next offset, ...}, as feed messages carry offsets.
nlohmann::json FeedOffsetsJson(const std::map<int32_t, int64_t>& offsets);
// Parses "0,3,7" (the partitions= of a forwarded read or feed).
Result<std::set<int32_t>> ParsePartitionList(const std::string& text);

}  // namespace freshet
