// LiveQueries: reactive SQL over the freshet views (GET /sql/feed; the
// protocol is in docs/live-protocol.md): the sessions, their connections
// and threads. What a query may be and how results are diffed is in
// live/sql_query.h.
//
// Each WebSocket client has a session with its own Postgres connection, as
// a login role that holds only freshet_reader, and its own thread. Its
// query runs in a read-only REPEATABLE READ transaction with a statement
// timeout, together with the offsets of the views it names, so a result says
// exactly how fresh it is. One listener connection LISTENs to
// freshet_flush; a flush of a view marks the sessions that read it, which
// re-run no more often than their min_interval and send only the diff.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/websocket.h"

namespace freshet {

class LiveQuerySession;

class LiveQueries {
 public:
  // `view_names`: the views of this process (a query naming none of them
  // re-runs on every flush).
  LiveQueries(const Config& config, std::set<std::string> view_names, MetricsRegistry& metrics);
  ~LiveQueries();

  // Creates the login role for readers when views.sql.url is not set, and
  // starts listening for flushes. Failing here disables live SQL (each
  // client is told why); the views still run.
  void Start();
  // Closes every session and joins the listener and the session threads
  // (each ends after its current statement, bounded by the statement
  // timeout). Idempotent.
  void Stop();

  // Refuses (503) beyond views.sql.max_clients.
  WebSocketAccept Attach(std::shared_ptr<WebSocket> socket);

  struct Shared;  // what sessions and the listener share

 private:
  void Listen();

  std::shared_ptr<Shared> shared_;
  std::thread listener_;
};

}  // namespace freshet
