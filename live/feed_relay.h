// FeedRelays: a view's change feed, whole, from any view process, when
// several processes share the view (views.advertise_url set;
// docs/scale-out.md).
//
// A client's feed on a process is relayed from the processes that serve
// the view's partitions (views/view_owners.h): one upstream feed per owner,
// asking for that owner's partitions only and for each change as the
// partition's share of the row (FeedRequest::shares). The relay keeps the
// shares of the rows the client follows, merges them into whole rows
// (views/partition_rows.h) and sends the client the same protocol as a
// local feed (docs/live-protocol.md): one snapshot or resume, then every
// change once, in offset order per partition, with offsets that are resume
// tokens for any process.
//
// When a partition moves (its owner released it, or died and its upstream
// broke), the relay waits until the new owner serves it and asks it for the
// changes from the next offset the client has not seen: an owner that
// holds them in its feed history resumes there, so the client sees nothing
// of the move. One that does not makes the relay start over: the client
// gets `reset` and a fresh snapshot, as a slow client does.
//
// Every relay and its upstreams live on one thread (WebSocketClientLoop):
// no thread per client.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/websocket.h"
#include "core/websocket_client.h"
#include "live/change_feed.h"
#include "sinks/table.h"
#include "views/view_owners.h"

namespace freshet {

struct FeedRelayOptions {
  std::string token;           // views.feed.token, sent upstream
  size_t max_pending = 10000;  // messages queued to a client before it is reset
  size_t snapshot_chunk_rows = 500;
  // How often a relay looks for the owners of partitions it lacks, and
  // checks that its upstreams still serve theirs.
  std::chrono::milliseconds recheck{200};
};

class FeedRelays {
 public:
  FeedRelays(const ViewOwners& owners, FeedRelayOptions options, FeedMetrics& metrics);
  ~FeedRelays();  // Stop()
  FeedRelays(const FeedRelays&) = delete;
  FeedRelays& operator=(const FeedRelays&) = delete;

  // Relays `view` (`table`, over a topic of `partition_count` partitions) to
  // `socket`. `filter_query` is the client's key= or prefix= parameter as
  // it came, passed on upstream ("" for none).
  WebSocketCallbacks Attach(std::string view, TableSpec table, int partition_count, std::string filter_query,
                            std::shared_ptr<WebSocket> socket, FeedRequest request);
  void CloseAll(uint16_t code, const std::string& reason);
  // Closes every client (1001) and its upstreams and joins the thread.
  // Clients' sockets may still report their close later: that is safe
  // while this object lives. Idempotent.
  void Stop();

 private:
  class Relay;
  const ViewOwners& owners_;
  const FeedRelayOptions options_;
  FeedMetrics& metrics_;
  WebSocketClientLoop loop_;
  std::map<uint64_t, std::shared_ptr<Relay>> relays_;  // on the loop's thread only
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace freshet
