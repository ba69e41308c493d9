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
#include "views/view_runner.h"
#include "writer/inventory.h"
#include "writer/writer.h"

namespace freshet {
namespace {

Result<Config> LoadOrExplain(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) std::cerr << "freshet: config error: " << config.status().message() << "\n";
  return config;
}

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockShutdownSignals() {
  sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSignals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

int WaitForShutdownSignalFor(std::chrono::milliseconds timeout) {
  sigset_t set = ShutdownSignals();
  timespec wait{static_cast<time_t>(timeout.count() / 1000),
                static_cast<long>(timeout.count() % 1000) * 1000000};
  int sig = sigtimedwait(&set, nullptr, &wait);
  return sig == SIGINT || sig == SIGTERM ? sig : 0;
}

int RunCheckConfigCommand(const std::string& config_path) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  const Config& c = config.value();
  nlohmann::json out = {
      {"kafka", {{"brokers", c.kafka.brokers}, {"topic", c.kafka.topic}, {"partitions", c.kafka.partitions}}},
      {"postgres", {{"url", RedactUrl(c.postgres.url)}}},
      {"writer",
       {{"listen", c.writer.listen}, {"linger_ms", c.writer.linger_ms}, {"max_batch", c.writer.max_batch}}},
      {"views",
       {{"listen", c.views.listen},
        {"group_id", c.views.group_id},
        {"flush_interval_ms", c.views.flush_interval_ms},
        {"max_batch_rows", c.views.max_batch_rows},
        {"session_timeout_ms", c.views.session_timeout_ms}}},
      {"log_level", c.log_level}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

int RunWriterCommand(const std::string& config_path, const DomainRegistry& domains) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  if (Status st = RequireField(config->kafka.brokers, "kafka.brokers"); !st.ok()) {
    std::cerr << "freshet: config error: " << st.message() << "\n";
    return 2;
  }
  auto domain = domains.Make(config->writer.domain);
  if (!domain.ok()) {
    std::cerr << "freshet: config error: writer.domain: " << domain.status().message() << "\n";
    return 2;
  }
  InitLogging(config->log_level, "writer");
  BlockShutdownSignals();

  auto writer = Writer::Start(config.value(), std::move(domain.value()));
  if (!writer.ok()) {
    spdlog::error("writer: {}", writer.status().ToString());
    return 1;
  }
  HttpServer::Options http;
  http.listen = config->writer.listen;
  http.threads = config->writer.io_threads;
  http.max_body_bytes = static_cast<size_t>(config->writer.max_body_bytes);
  Writer* w = writer->get();
  auto server = HttpServer::Start(
      http, [w](HttpRequest&& req, HttpReply reply) { w->HandleHttp(std::move(req), std::move(reply)); });
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

int RunViewsCommand(const std::string& config_path, const ProjectionRegistry& projections) {
  auto config = LoadOrExplain(config_path);
  if (!config.ok()) return 2;
  for (auto [value, field] :
       {std::pair{&config->kafka.brokers, "kafka.brokers"}, {&config->postgres.url, "postgres.url"}}) {
    if (Status st = RequireField(*value, field); !st.ok()) {
      std::cerr << "freshet: config error: " << st.message() << "\n";
      return 2;
    }
  }
  auto runner = ViewRunner::Create(config.value(), projections);
  if (!runner.ok()) {
    std::cerr << "freshet: config error: " << runner.status().message() << "\n";
    return 2;
  }
  InitLogging(config->log_level, "views");
  BlockShutdownSignals();

  HttpServer::Options http;
  http.listen = config->views.listen;
  http.threads = 2;  // feeds fan out to many sockets: use both cores of a small machine
  ViewRunner* r = runner->get();
  auto server = HttpServer::Start(
      http, [r](HttpRequest&& req, HttpReply reply) { r->HandleHttp(std::move(req), reply); },
      [r](const HttpRequest& req, std::shared_ptr<WebSocket> socket) {
        return r->HandleWebSocket(req, std::move(socket));
      });
  if (!server.ok()) {
    spdlog::error("views: {} (views.listen)", server.status().message());
    return 1;
  }
  if (Status st = (*runner)->Start(); !st.ok()) {
    spdlog::error("views: {}", st.ToString());
    return 1;
  }
  spdlog::info("views: listening on http://{}", config->views.listen);
  int sig = WaitForShutdownSignal();
  spdlog::info("views: signal {} received, flushing and shutting down", sig);
  (*runner)->Stop();
  (*server)->Stop();
  // The runner's feeds hold WebSocket sessions: release them while the
  // server's I/O context still exists.
  runner.value().reset();
  spdlog::info("views: stopped");
  return 0;
}

}  // namespace freshet
