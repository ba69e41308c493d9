#include "live/live_endpoints.h"

#include <set>

#include "views/rocksdb_view_store.h"

namespace freshet {

namespace {

std::set<std::string> ViewNames(const ViewSupervisor& supervisor) {
  std::set<std::string> names;
  for (const auto& view : supervisor.views()) names.insert(view->name);
  return names;
}

}  // namespace

LiveEndpoints::LiveEndpoints(ViewSupervisor& supervisor, MetricsRegistry& metrics)
    : supervisor_(supervisor),
      config_(supervisor.config()),
      live_queries_(supervisor.config(), ViewNames(supervisor), metrics) {}

LiveEndpoints::~LiveEndpoints() { Stop(); }

void LiveEndpoints::Start() {
  if (ViewOwners* owners = supervisor_.owners()) {
    FeedRelayOptions relay;
    relay.token = config_.views.feed.token;
    relay.max_pending = static_cast<size_t>(config_.views.feed.max_pending);
    feed_relays_ = std::make_unique<FeedRelays>(*owners, relay, supervisor_.feed_metrics());
  }
  live_queries_.Start();
}

void LiveEndpoints::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Feed clients first: their close frames go out while the views flush.
  for (const auto& view : supervisor_.views())
    view->feed->CloseAll(kCloseGoingAway, "the view process is shutting down");
  if (feed_relays_) feed_relays_->Stop();  // before the owners they read stop
  live_queries_.Stop();
}

WebSocketAccept LiveEndpoints::Handle(const HttpRequest& req, std::shared_ptr<WebSocket> socket) {
  const std::string prefix = "/views/";
  if (req.path.rfind(prefix, 0) == 0 && req.path.size() > prefix.size() + 5 &&
      req.path.compare(req.path.size() - 5, 5, "/feed") == 0) {
    if (auto refusal = CheckBearerToken(req, config_.views.feed.token))
      return WebSocketAccept::Refuse(*refusal);
    return HandleFeed(req.path.substr(prefix.size(), req.path.size() - prefix.size() - 5), req,
                      std::move(socket));
  }
  if (req.path == "/sql/feed") {
    if (auto refusal = CheckBearerToken(req, config_.views.feed.token))
      return WebSocketAccept::Refuse(*refusal);
    return live_queries_.Attach(std::move(socket));
  }
  return WebSocketAccept::Refuse(ErrorResponse(
      404, "no WebSocket endpoint at " + req.path + " (there are /views/{name}/feed and /sql/feed)"));
}

WebSocketAccept LiveEndpoints::HandleFeed(const std::string& name, const HttpRequest& req,
                                          std::shared_ptr<WebSocket> socket) {
  SupervisedView* chosen = nullptr;
  std::string wanted_store;
  if (auto s = req.query.find("store"); s != req.query.end()) {
    wanted_store = s->second;
    if (wanted_store != "rocksdb" && wanted_store != "postgres")
      return WebSocketAccept::Refuse(
          ErrorResponse(400, "store: expected rocksdb or postgres, got \"" + wanted_store + "\""));
  }
  std::vector<SupervisedView*> matching = supervisor_.Find(name);
  for (SupervisedView* view : matching)
    if (!wanted_store.empty() ? view->store == wanted_store : (!chosen || view->store == "rocksdb"))
      chosen = view;
  if (matching.empty()) return WebSocketAccept::Refuse(ErrorResponse(404, "no such view: " + name));
  if (!chosen)
    return WebSocketAccept::Refuse(ErrorResponse(404, "view " + name + " has no " + wanted_store + " copy"));
  if (chosen->spec && chosen->spec->kind == ViewKind::kAggregate && chosen->spec->source.changelog())
    return WebSocketAccept::Refuse(ErrorResponse(
        400, "view " + name +
                 " aggregates a changelog when it is read (in its SQL view), so it has no change feed of "
                 "its groups: follow it with live SQL (/sql/feed) instead"));

  FeedRequest request;
  auto key = req.query.find("key");
  auto prefix = req.query.find("prefix");
  if (key != req.query.end() && prefix != req.query.end())
    return WebSocketAccept::Refuse(ErrorResponse(400, "give at most one of key=a/b or prefix=a/"));
  if (key != req.query.end()) {
    if (key->second.empty()) return WebSocketAccept::Refuse(ErrorResponse(400, "key: must not be empty"));
    request.filter = {RocksDbViewStore::KeyFromUrl(key->second), true};
  } else if (prefix != req.query.end()) {
    request.filter = {RocksDbViewStore::KeyFromUrl(prefix->second), false};
  }
  if (auto from = req.query.find("from"); from != req.query.end()) {
    auto offsets = ParseFeedOffsets(from->second);
    if (!offsets.ok()) return WebSocketAccept::Refuse(ErrorResponse(400, offsets.status().message()));
    request.from = *offsets;
  }
  if (auto batch = req.query.find("batch"); batch != req.query.end()) {
    if (batch->second != "0" && batch->second != "1")
      return WebSocketAccept::Refuse(ErrorResponse(400, "batch: expected 0 or 1"));
    request.batch = batch->second == "1";
  }
  if (auto listed = req.query.find("partitions"); listed != req.query.end()) {
    auto partitions = ParsePartitionList(listed->second);
    if (!partitions.ok()) return WebSocketAccept::Refuse(ErrorResponse(400, partitions.status().message()));
    request.partitions = *partitions;
  }
  if (auto shares = req.query.find("shares"); shares != req.query.end()) {
    if (shares->second != "0" && shares->second != "1")
      return WebSocketAccept::Refuse(ErrorResponse(400, "shares: expected 0 or 1"));
    request.shares = shares->second == "1";
    if (request.shares && chosen->store != "rocksdb")
      return WebSocketAccept::Refuse(
          ErrorResponse(400, "shares=1: only a RocksDB copy keeps partition shares"));
  }
  if (supervisor_.feed_metrics().connected.load() >= config_.views.feed.max_clients) {
    HttpResponse busy = ErrorResponse(503, "too many feed clients (views.feed.max_clients = " +
                                               std::to_string(config_.views.feed.max_clients) + ")");
    busy.headers.push_back({"Retry-After", "5"});
    return WebSocketAccept::Refuse(busy);
  }
  WebSocketAccept accept;
  if (feed_relays_ && chosen->store == "rocksdb" && request.partitions.empty()) {
    // Scale-out: the whole view, relayed from the partitions' owners.
    std::string topic = supervisor_.SourceTopicOf(*chosen);
    auto count = supervisor_.SourcePartitionCount(topic, 0);
    if (!count.ok()) {
      HttpResponse r = ErrorResponse(503, "topic " + topic + ": " + count.status().message());
      r.headers.emplace_back("Retry-After", "1");
      return WebSocketAccept::Refuse(r);
    }
    std::string filter_query;
    if (key != req.query.end()) filter_query = "key=" + PercentEncode(key->second);
    if (prefix != req.query.end()) filter_query = "prefix=" + PercentEncode(prefix->second);
    accept.callbacks = feed_relays_->Attach(chosen->name, chosen->table, *count, std::move(filter_query),
                                            std::move(socket), std::move(request));
    return accept;
  }
  if (supervisor_.owners() && !request.partitions.empty()) {
    // Another process forwards these partitions: they must be served here.
    for (int32_t p : request.partitions) {
      if (!supervisor_.ServesNow(*chosen, p)) {
        HttpResponse r = ErrorResponse(503, "view " + name + ": partition " + std::to_string(p) +
                                                " is not served by this process (" +
                                                supervisor_.owners()->url() + ") now; retry");
        r.headers.emplace_back("Retry-After", "1");
        return WebSocketAccept::Refuse(r);
      }
    }
  }
  accept.callbacks = chosen->feed->Attach(std::move(socket), std::move(request));
  return accept;
}

}  // namespace freshet
