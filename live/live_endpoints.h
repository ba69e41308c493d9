// LiveEndpoints: a view process's WebSocket endpoints (the protocol is in
// docs/live-protocol.md):
//   GET /views/{name}/feed   a view's change feed (live/change_feed.h); with
//                            scale-out, relayed from every partition's owner
//                            (live/feed_relay.h)
//   GET /sql/feed            live SQL queries (live/sql_feed.h)
// Both require views.feed.token when one is set.
#pragma once

#include <memory>
#include <string>

#include "core/metrics.h"
#include "core/websocket.h"
#include "live/feed_relay.h"
#include "live/sql_feed.h"
#include "views/view_supervisor.h"

namespace freshet {

class LiveEndpoints {
 public:
  LiveEndpoints(ViewSupervisor& supervisor, MetricsRegistry& metrics);
  ~LiveEndpoints();  // Stop()
  LiveEndpoints(const LiveEndpoints&) = delete;
  LiveEndpoints& operator=(const LiveEndpoints&) = delete;

  // Starts live SQL's listener and, with scale-out, the feed relays.
  void Start();
  // Closes every feed and live SQL client (1001). Idempotent. Sockets may
  // still report their close later: that is safe while this object lives.
  void Stop();

  WebSocketAccept Handle(const HttpRequest& request, std::shared_ptr<WebSocket> socket);

 private:
  WebSocketAccept HandleFeed(const std::string& name, const HttpRequest& request,
                             std::shared_ptr<WebSocket> socket);

  ViewSupervisor& supervisor_;
  const Config& config_;
  LiveQueries live_queries_;
  std::unique_ptr<FeedRelays> feed_relays_;  // with scale-out
  bool stopped_ = false;
};

}  // namespace freshet
