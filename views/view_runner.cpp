#include "views/view_runner.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "views/declarative_projection.h"
#include "views/stock_levels.h"

namespace freshet {

Result<std::unique_ptr<ViewRunner>> ViewRunner::Create(const Config& config) {
  auto specs = ParseViewSpecs(config.views.definitions, "views.definitions");
  if (!specs.ok()) return specs.status();
  std::unique_ptr<ViewRunner> runner(new ViewRunner());
  runner->config_ = config;
  for (size_t i = 0; i < specs->size(); ++i) {
    ViewSpec& spec = (*specs)[i];
    for (const auto& store : spec.stores)
      if (store != "postgres")
        return Status::InvalidArgument("views.definitions[" + std::to_string(i) + "](" + spec.name +
                                       ").stores: \"" + store + "\" is not available yet; use \"postgres\"");
    auto view = std::make_unique<ViewThread>();
    view->name = spec.name;
    view->spec = std::make_unique<ViewSpec>(std::move(spec));
    runner->views_.push_back(std::move(view));
  }
  if (runner->views_.empty()) {
    auto view = std::make_unique<ViewThread>();
    view->name = "stock_levels";
    runner->views_.push_back(std::move(view));
  }
  for (auto& view : runner->views_) view->metrics = std::make_unique<ViewMetrics>(runner->metrics_, view->name);
  return runner;
}

ViewRunner::~ViewRunner() { Stop(); }

Status ViewRunner::Start() {
  auto producer = Producer::Create({config_.kafka.brokers, config_.kafka.client_properties});
  if (!producer.ok()) return producer.status();
  dead_letters_ = std::move(producer.value());
  for (auto& view : views_) view->thread = std::thread([this, v = view.get()] { RunView(*v); });
  return Status::Ok();
}

void ViewRunner::Stop() {
  stop_ = true;
  for (auto& view : views_)
    if (view->thread.joinable()) view->thread.join();
}

void ViewRunner::RunView(ViewThread& view) {
  bool realtime = !view.spec || view.spec->realtime;
  if (!realtime) {
    // A batch view yields the CPU to realtime views of the same process.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  }
  ViewEngineOptions options;
  options.kafka = {config_.kafka.brokers, config_.kafka.client_properties};
  options.topic = config_.kafka.topic;
  options.group_id = config_.views.group_id + "." + view.name;
  options.session_timeout_ms = config_.views.session_timeout_ms;
  options.flush_interval = std::chrono::milliseconds(view.spec ? view.spec->flush_interval_ms : config_.views.flush_interval_ms);
  options.max_batch_events = static_cast<size_t>(view.spec ? view.spec->max_batch_rows : config_.views.max_batch_rows);
  options.max_lag = std::chrono::milliseconds(view.spec ? view.spec->max_lag_ms : 5000);
  options.stop_on_error = view.spec && view.spec->stop_on_error;
  options.dead_letter_topic = config_.kafka.dead_letter_topic;
  options.dead_letters = dead_letters_.get();

  auto backoff = std::chrono::milliseconds(500);
  while (!stop_.load()) {
    std::unique_ptr<Projection> projection;
    if (view.spec) projection = std::make_unique<DeclarativeProjection>(*view.spec);
    else projection = std::make_unique<StockLevelsProjection>();
    auto sink = PostgresSink::Open(config_.postgres.url, config_.kafka.topic, projection->table());
    if (!sink.ok()) {
      spdlog::warn("view {}: {}; retrying in {} ms", view.name, sink.status().message(), backoff.count());
      {
        std::lock_guard lock(view.mu);
        view.last.state = "waiting";
        view.last.error = sink.status().message();
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
      continue;
    }
    ViewEngine engine(options, std::move(projection), std::move(sink.value()), *view.metrics);
    {
      std::lock_guard lock(view.mu);
      view.engine = &engine;
    }
    Status st = engine.Run(stop_);
    std::lock_guard lock(view.mu);
    view.last = engine.Snapshot();
    view.engine = nullptr;
    if (st.ok()) break;
    if (st.code() == StatusCode::kInvalidArgument) {  // stopped on a bad event: stays stopped
      view.last.state = "stopped";
      view.last.error = st.message();
      return;
    }
    spdlog::warn("view {}: {}; restarting its engine", view.name, st.message());
    view.last.state = "restarting";
    view.last.error = st.message();
    std::this_thread::sleep_for(backoff);
  }
  std::lock_guard lock(view.mu);
  view.last.state = "stopped";
}

nlohmann::json ViewRunner::StatusJson(ViewThread& view) {
  ViewStatus s;
  {
    std::lock_guard lock(view.mu);
    s = view.engine ? view.engine->Snapshot() : view.last;
  }
  nlohmann::json offsets = nlohmann::json::object(), lag = nlohmann::json::object();
  for (const auto& [p, next] : s.next_offsets) offsets[std::to_string(p)] = next;
  for (const auto& [p, l] : s.lag) lag[std::to_string(p)] = l;
  if (s.building && s.state == "running") s.state = "building";
  nlohmann::json out = {{"view", view.name},       {"state", s.state},       {"next_offsets", offsets},
                        {"lag", lag},              {"stale", s.stale},       {"last_flush_ms", s.last_flush_ms},
                        {"events", view.metrics->events.value()},
                        {"dead_letters", view.metrics->dead_letters.value()}};
  if (!s.error.empty()) out["error"] = s.error;
  if (view.spec) {
    out["version"] = view.spec->version;
    out["table"] = view.spec->name + "__v" + view.spec->version;
    out["definition"] = view.spec->source;
  }
  return out;
}

void ViewRunner::HandleHttp(HttpRequest&& req, HttpReply reply) {
  if (req.path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}}));
  if (req.path == "/metrics") return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics_.RenderPrometheus(), {}});
  if (req.path == "/views") {
    nlohmann::json list = nlohmann::json::array();
    for (auto& view : views_) list.push_back(StatusJson(*view));
    return reply(JsonResponse(200, {{"views", list}}));
  }
  const std::string prefix = "/views/";
  if (req.path.rfind(prefix, 0) == 0) {
    std::string rest = req.path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string name = rest.substr(0, slash);
    std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    for (auto& view : views_) {
      if (view->name != name) continue;
      if (what == "status" || what.empty()) return reply(JsonResponse(200, StatusJson(*view)));
      return reply(ErrorResponse(404, "no such endpoint for view " + name + ": " + what));
    }
    return reply(ErrorResponse(404, "no such view: " + name));
  }
  reply(ErrorResponse(404, "no such endpoint: " + req.path));
}

}  // namespace freshet
