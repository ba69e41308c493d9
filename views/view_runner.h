// ViewRunner: a view process put together. The views run under a
// ViewSupervisor (views/view_supervisor.h: one engine and thread per view
// and store); HTTP requests go to ViewHttpApi (views/view_http_api.h);
// WebSocket upgrades to LiveEndpoints (live/live_endpoints.h).
#pragma once

#include <memory>

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/websocket.h"
#include "live/live_endpoints.h"
#include "views/projection_registry.h"
#include "views/view_http_api.h"
#include "views/view_supervisor.h"

namespace freshet {

class ViewRunner {
 public:
  // Validates the definitions (errors name the view and field), opens the
  // RocksDB database if a view has a RocksDB copy, and prepares one runner
  // per view; nothing is started.
  // C++ projections come from `projections`; with no definitions the view
  // process runs the registered "stock_levels" alone, if there is one.
  static Result<std::unique_ptr<ViewRunner>> Create(
      const Config& config, const ProjectionRegistry& projections = StockProjections());
  ~ViewRunner();

  Status Start();
  void Stop();  // closes the live clients, flushes every view and leaves the groups

  // The endpoints listed in views/view_http_api.h.
  void HandleHttp(HttpRequest&& request, HttpReply reply) {
    api_->Handle(std::move(request), std::move(reply));
  }
  // WebSocket upgrades: GET /views/{name}/feed and GET /sql/feed
  // (docs/live-protocol.md).
  WebSocketAccept HandleWebSocket(const HttpRequest& request, std::shared_ptr<WebSocket> socket) {
    return live_->Handle(request, std::move(socket));
  }
  MetricsRegistry& metrics() { return metrics_; }

 private:
  ViewRunner() = default;

  MetricsRegistry metrics_;
  std::unique_ptr<ViewSupervisor> supervisor_;
  std::unique_ptr<ViewHttpApi> api_;
  std::unique_ptr<LiveEndpoints> live_;
  bool stopped_ = false;
};

}  // namespace freshet
