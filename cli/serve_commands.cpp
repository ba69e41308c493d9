#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/postgres.h"
#include "views/stock_levels.h"
#include "views/view_engine.h"
#include "writer/inventory.h"
#include "writer/writer.h"

namespace freshet {
namespace {

Result<Config> LoadOrExplain(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) std::cerr << "freshet: config error: " << config.status().message() << "\n";
  return config;
}

}  // namespace

void BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

int RunCheckConfigCommand(const std::string& config_path) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  const Config& c = config.value();
  nlohmann::json out = {
      {"kafka", {{"brokers", c.kafka.brokers}, {"topic", c.kafka.topic}, {"partitions", c.kafka.partitions}}},
      {"postgres", {{"url", RedactUrl(c.postgres.url)}}},
      {"writer", {{"listen", c.writer.listen}, {"linger_ms", c.writer.linger_ms}, {"max_batch", c.writer.max_batch}}},
      {"views",
       {{"listen", c.views.listen}, {"group_id", c.views.group_id}, {"flush_interval_ms", c.views.flush_interval_ms},
        {"max_batch_rows", c.views.max_batch_rows}, {"session_timeout_ms", c.views.session_timeout_ms}}},
      {"log_level", c.log_level}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

int RunWriterCommand(const std::string& config_path) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  if (Status st = RequireField(config->kafka.brokers, "kafka.brokers"); !st.ok()) {
    std::cerr << "freshet: config error: " << st.message() << "\n";
    return 2;
  }
  InitLogging(config->log_level, "writer");
  BlockShutdownSignals();

  auto writer = Writer::Start(config.value(), MakeDomain(config->writer.domain));
  if (!writer.ok()) {
    spdlog::error("writer: {}", writer.status().ToString());
    return 1;
  }
  HttpServer::Options http;
  http.listen = config->writer.listen;
  http.threads = config->writer.io_threads;
  http.max_body_bytes = static_cast<size_t>(config->writer.max_body_bytes);
  Writer* w = writer->get();
  auto server = HttpServer::Start(http, [w](HttpRequest&& req, HttpReply reply) {
    w->HandleHttp(std::move(req), std::move(reply));
  });
  if (!server.ok()) {
    spdlog::error("writer: {} (writer.listen)", server.status().message());
    return 1;
  }
  spdlog::info("writer: listening on http://{}", config->writer.listen);
  int sig = WaitForShutdownSignal();
  spdlog::info("writer: signal {} received, shutting down", sig);
  // Stop taking requests, answer everything queued, then close connections.
  (*writer)->Stop();
  (*server)->Stop();
  return 0;
}

int RunViewsCommand(const std::string& config_path) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  for (auto [value, field] : {std::pair{&config->kafka.brokers, "kafka.brokers"}, {&config->postgres.url, "postgres.url"}}) {
    if (Status st = RequireField(*value, field); !st.ok()) {
      std::cerr << "freshet: config error: " << st.message() << "\n";
      return 2;
    }
  }
  InitLogging(config->log_level, "views");
  BlockShutdownSignals();

  std::atomic<bool> stop{false};
  std::thread signals([&stop] {
    int sig = WaitForShutdownSignal();
    spdlog::info("views: signal {} received, flushing and shutting down", sig);
    stop = true;
  });
  signals.detach();

  MetricsRegistry metrics;
  std::atomic<ViewEngine*> engine_for_status{nullptr};
  HttpServer::Options http;
  http.listen = config->views.listen;
  auto server = HttpServer::Start(http, [&](HttpRequest&& req, HttpReply reply) {
    if (req.path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}}));
    if (req.path == "/metrics") return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics.RenderPrometheus(), {}});
    if (req.path == "/views/stock_levels/status") {
      ViewEngine* engine = engine_for_status.load();
      nlohmann::json offsets = nlohmann::json::object();
      if (engine)
        for (const auto& [p, next] : engine->StoredOffsets()) offsets[std::to_string(p)] = next;
      return reply(JsonResponse(200, {{"view", "stock_levels"}, {"next_offsets", offsets}}));
    }
    reply(ErrorResponse(404, "no such endpoint: " + req.path));
  });
  if (!server.ok()) {
    spdlog::error("views: {} (views.listen)", server.status().message());
    return 1;
  }
  spdlog::info("views: listening on http://{}", config->views.listen);

  ViewEngineOptions options;
  options.kafka = {config->kafka.brokers, config->kafka.client_properties};
  options.topic = config->kafka.topic;
  options.group_id = config->views.group_id;
  options.flush_interval = std::chrono::milliseconds(config->views.flush_interval_ms);
  options.max_batch_events = static_cast<size_t>(config->views.max_batch_rows);
  options.session_timeout_ms = config->views.session_timeout_ms;

  auto backoff = std::chrono::milliseconds(500);
  while (!stop.load()) {
    auto sink = PostgresSink::Open(config->postgres.url, config->kafka.topic, StockLevelsProjection().table());
    if (!sink.ok()) {
      spdlog::warn("views: {}; retrying in {} ms", sink.status().message(), backoff.count());
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
      continue;
    }
    ViewEngine engine(options, std::make_unique<StockLevelsProjection>(), std::move(sink.value()), metrics);
    engine_for_status = &engine;
    Status st = engine.Run(stop);
    engine_for_status = nullptr;
    if (!st.ok()) {
      spdlog::warn("views: {}; restarting the engine", st.message());
      std::this_thread::sleep_for(backoff);
    }
  }
  (*server)->Stop();
  spdlog::info("views: stopped");
  return 0;
}

}  // namespace freshet
