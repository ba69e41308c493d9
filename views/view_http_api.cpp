#include "views/view_http_api.h"

#include <spdlog/spdlog.h>

#include "live/change_feed.h"
#include "views/rocksdb_view_store.h"
#include "web/assets.h"

namespace freshet {

ViewHttpApi::ViewHttpApi(ViewSupervisor& supervisor, MetricsRegistry& metrics)
    : supervisor_(supervisor), config_(supervisor.config()), metrics_(metrics), created_ms_(NowMillis()) {
  for (const auto& view : supervisor_.views()) visible_[view.get()] = std::make_unique<VisibleWindow>();
}

ViewHttpApi::~ViewHttpApi() { Stop(); }

void ViewHttpApi::Start() {
  if (supervisor_.owners())
    scale_out_reads_ = std::make_unique<ScaleOutReads>(*supervisor_.owners(), kScaleOutReadThreads);
}

void ViewHttpApi::Stop() {
  if (stopped_) return;
  stopped_ = true;
  scale_out_reads_.reset();  // finishes the reads it holds
  // Their checks read the views' store: answered (a last check) before it goes.
  offset_waiters_.Stop();
}

void ViewHttpApi::Handle(HttpRequest&& req, HttpReply reply) {
  // The dashboard: web/ files, embedded at build time.
  std::string file = req.path == "/" ? "index.html" : req.path.substr(1);
  for (const WebAsset* a = kWebAssets; a->name; ++a)
    if (file == a->name)
      // Notebooks on other origins (Observable) import freshet.js from here.
      return reply(HttpResponse{200,
                                a->content_type,
                                a->body,
                                {{"Cache-Control", "no-cache"}, {"Access-Control-Allow-Origin", "*"}}});
  if (req.path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}}));
  if (req.path == "/metrics")
    return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics_.RenderPrometheus(), {}});
  if (req.path == "/views") {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& view : supervisor_.views()) list.push_back(StatusJson(*view));
    return reply(JsonResponse(200, {{"views", list}}));
  }
  const std::string prefix = "/views/";
  if (req.path.rfind(prefix, 0) == 0) {
    std::string rest = req.path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string name = rest.substr(0, slash);
    std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    std::vector<SupervisedView*> matching = supervisor_.Find(name);
    if (!matching.empty()) {
      if (what == "status" || what.empty()) {
        // The Postgres copy first (it is listed first); every store under "stores".
        nlohmann::json out = StatusJson(*matching.front());
        if (matching.size() > 1) {
          out["stores"] = nlohmann::json::object();
          for (SupervisedView* v : matching) out["stores"][v->store] = StatusJson(*v);
        }
        return reply(JsonResponse(200, out));
      }
      if (what == "rows") {
        for (SupervisedView* v : matching)
          if (v->store == "rocksdb") return HandleRows(*v, req, std::move(reply));
        return reply(
            ErrorResponse(404, "view " + name + " has no RocksDB copy; add \"rocksdb\" to its \"stores\""));
      }
      if (what == "rebuild") return HandleRebuild(matching, req, std::move(reply));
      if (what == "owners") return reply(OwnersJson(name));
      return reply(ErrorResponse(404, "no such endpoint for view " + name + ": " + what));
    }
    return reply(ErrorResponse(404, "no such view: " + name));
  }
  reply(ErrorResponse(404, "no such endpoint: " + req.path));
}
nlohmann::json ViewHttpApi::StatusJson(SupervisedView& view) {
  ViewStatus s = supervisor_.Snapshot(view);
  nlohmann::json offsets = nlohmann::json::object(), lag = nlohmann::json::object();
  for (const auto& [p, next] : s.next_offsets) offsets[std::to_string(p)] = next;
  for (const auto& [p, l] : s.lag) lag[std::to_string(p)] = l;
  if (s.building && s.state == "running") s.state = "building";
  nlohmann::json out = {{"view", view.name},
                        {"store", view.store},
                        {"state", s.state},
                        {"next_offsets", offsets},
                        {"lag", lag},
                        {"stale", s.stale},
                        {"last_flush_ms", s.last_flush_ms},
                        {"events", view.metrics->events.value()},
                        {"dead_letters", view.metrics->dead_letters.value()}};
  // From the histogram's buckets: an upper bound, not an exact percentile.
  // Since the process started (a catch-up at start stays in it for good):
  const Histogram& visible = view.metrics->visible_seconds;
  if (visible.count() > 0)
    out["event_to_visible_ms"] = {{"p50_at_most", visible.Quantile(0.5) * 1000},
                                  {"p99_at_most", visible.Quantile(0.99) * 1000},
                                  {"events", visible.count()}};
  const int64_t now = NowMillis();
  VisibleRecent(view, now, &out);
  out["now_ms"] = now;  // the server's clock when this status was taken
  if (!s.error.empty()) out["error"] = s.error;
  if (!s.waiting_for.empty()) out["waiting_for"] = s.waiting_for;
  if (!s.log_start.empty()) {
    nlohmann::json starts = nlohmann::json::object();
    for (const auto& [p, start] : s.log_start) starts[std::to_string(p)] = start;
    out["source_log_start"] = starts;  // partitions whose log lost its beginning
  }
  if (!s.rebuild.empty()) out["rebuild"] = nlohmann::json::parse(s.rebuild, nullptr, false);
  if (view.spec) {
    out["version"] = view.spec->version;
    out["table"] = view.spec->name + "__v" + view.spec->version;
    out["definition"] = view.spec->definition;
  }
  return out;
}

void ViewHttpApi::VisibleRecent(SupervisedView& view, int64_t now, nlohmann::json* out) {
  const Histogram& visible = view.metrics->visible_seconds;
  // ...and over the last minute that had events, with when that was: what a
  // user can act on.
  {
    constexpr int64_t kWindowMs = 60000;
    VisibleWindow& w = *visible_.at(&view);
    std::lock_guard lock(w.mu);
    auto& snapshots = w.snapshots;
    std::vector<uint64_t> counts = visible.BucketCounts();
    if (snapshots.empty()) snapshots.emplace_back(created_ms_, std::vector<uint64_t>(counts.size(), 0));
    // The baseline: the newest snapshot at least a window old (else the oldest).
    while (snapshots.size() >= 2 && now - snapshots[1].first >= kWindowMs) snapshots.pop_front();
    const auto& [since, before] = snapshots.front();
    std::vector<uint64_t> window(counts.size(), 0);
    uint64_t events = 0;
    for (size_t i = 0; i < counts.size() && i < before.size(); ++i) {
      window[i] = counts[i] >= before[i] ? counts[i] - before[i] : 0;
      events += window[i];
    }
    if (events > 0)
      w.recent = {{"p50_at_most", visible.QuantileOf(window, 0.5) * 1000},
                  {"p99_at_most", visible.QuantileOf(window, 0.99) * 1000},
                  {"events", events},
                  {"window_ms", now - since},
                  {"measured_at_ms", now}};
    if (now - snapshots.back().first >= 1000) snapshots.emplace_back(now, std::move(counts));
    if (!w.recent.is_null()) (*out)["event_to_visible_recent_ms"] = w.recent;
  }
}

void ViewHttpApi::HandleRows(SupervisedView& view, const HttpRequest& req, HttpReply reply) {
  auto key = req.query.find("key");
  auto prefix = req.query.find("prefix");
  if ((key == req.query.end()) == (prefix == req.query.end()))
    return reply(ErrorResponse(400, "give exactly one of key=a/b or prefix=a/"));
  RowsQuery query;
  if (key != req.query.end())
    query.key = key->second;
  else
    query.prefix = prefix->second;
  if (auto l = req.query.find("limit"); l != req.query.end()) {
    char* end = nullptr;
    long n = std::strtol(l->second.c_str(), &end, 10);
    if (l->second.empty() || *end != '\0' || n < 1 || n > 10000)
      return reply(ErrorResponse(400, "limit: expected an integer from 1 to 10000"));
    query.limit = static_cast<size_t>(n);
  }
  if (auto m = req.query.find("min_offset"); m != req.query.end()) {
    // The feeds' parser, for exactly one pair.
    auto pair = ParseFeedOffsets(m->second);
    if (!pair.ok() || pair->size() != 1 || m->second.find(',') != std::string::npos)
      return reply(ErrorResponse(400, "min_offset: expected partition:offset, e.g. 3:1042"));
    query.wait_partition = pair->begin()->first;
    query.wait_offset = pair->begin()->second;
  }
  // partitions=1,5,9: another view process asks for this one's shares of
  // the partitions it serves (ScaleOutReads).
  std::set<int32_t> asked;
  bool forwarded = false;
  if (auto f = req.query.find("partitions"); f != req.query.end()) {
    forwarded = true;
    auto partitions = ParsePartitionList(f->second);
    if (!partitions.ok()) return reply(ErrorResponse(400, partitions.status().message()));
    asked = *partitions;
  }
  const std::string topic = supervisor_.SourceTopicOf(view);
  if (scale_out_reads_ && !forwarded) {
    auto count = supervisor_.SourcePartitionCount(topic, 0);
    if (!count.ok()) return reply(ErrorResponse(503, "topic " + topic + ": " + count.status().message()));
    // A reader waiting for a partition the topic does not have: say so now.
    if (query.wait_partition >= *count)
      return reply(ErrorResponse(400, "min_offset: partition " + std::to_string(query.wait_partition) +
                                          " does not exist: topic " + topic + " has " +
                                          std::to_string(*count) + " partitions"));
    std::string encoded = query.key.empty() ? RocksDbViewStore::KeyFromUrl(query.prefix)
                                            : SharesOf(RocksDbViewStore::KeyFromUrl(query.key));
    size_t limit = query.limit;
    return scale_out_reads_->Read(
        view.name, view.table, *count, std::move(query),
        [this, &view, encoded, limit](const std::set<int32_t>& partitions) {
          return ReadOwnShares(view, partitions, encoded, limit);
        },
        std::move(reply));
  }
  auto answer = [this, &view, query, asked, forwarded]() {
    auto own = ReadOwnShares(view, asked,
                             query.key.empty() ? RocksDbViewStore::KeyFromUrl(query.prefix)
                                               : SharesOf(RocksDbViewStore::KeyFromUrl(query.key)),
                             query.limit);
    if (!own.ok()) {
      HttpResponse r = ErrorResponse(HttpStatusFor(own.status()), own.status().message());
      if (r.status == 503) r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    if (forwarded) return JsonResponse(200, ShareAnswerJson(*own));
    nlohmann::json rows = nlohmann::json::array();
    for (auto& [k, v] : MergeShares(view.table, std::move(own->shares), query.limit)) {
      nlohmann::json row = RocksDbViewStore::RowJson(k, "{}");
      row["value"] = std::move(v);
      rows.push_back(std::move(row));
    }
    nlohmann::json offsets = nlohmann::json::object();
    for (const auto& [p, next] : own->next_offsets) offsets[std::to_string(p)] = next;
    return JsonResponse(
        200, {{"view", view.name}, {"table", own->table}, {"rows", rows}, {"next_offsets", offsets}});
  };
  int32_t wait_partition = query.wait_partition;
  int64_t wait_offset = query.wait_offset;
  RocksDbStore* rocksdb = supervisor_.rocksdb();
  auto reached = [rocksdb, &view, topic, wait_partition, wait_offset] {
    if (wait_partition < 0) return true;
    auto table = rocksdb->ResolveAlias(view.name);
    if (!table.ok()) return false;
    auto offsets = rocksdb->LoadOffsets(*table, topic);
    if (!offsets.ok()) return false;
    auto it = offsets->find(wait_partition);
    return it != offsets->end() && it->second > wait_offset;
  };
  if (reached()) return reply(answer());
  // Read-your-writes: wait (bounded) until the view has applied the offset
  // the writer returned. The waiters check again at every commit of an
  // engine (on_commit), on their own thread: no thread per reader.
  OffsetWaiters::Wait wait;
  // A partition the topic does not have never reaches any offset: say so
  // now instead of after the wait. (If the broker cannot tell, wait.)
  wait.admit = [this, topic, wait_partition]() -> Status {
    auto count = supervisor_.SourcePartitionCount(topic, wait_partition);
    if (!count.ok() || wait_partition < *count) return Status::Ok();
    return Status::InvalidArgument("min_offset: partition " + std::to_string(wait_partition) +
                                   " does not exist: topic " + topic + " has " + std::to_string(*count) +
                                   " partition" + (*count == 1 ? "" : "s") + " (0-" +
                                   std::to_string(*count - 1) + ")");
  };
  wait.reached = reached;
  wait.done = [reply, answer, wait_partition, wait_offset](const Status& st) {
    if (st.ok()) return reply(answer());
    if (st.code() == StatusCode::kTimeout)
      return reply(ErrorResponse(504, "the view has not reached partition " + std::to_string(wait_partition) +
                                          " offset " + std::to_string(wait_offset) + " within 5 s"));
    reply(ErrorResponse(HttpStatusFor(st), st.message()));
  };
  wait.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  if (Status held = offset_waiters_.Add(std::move(wait)); !held.ok())
    return reply(ErrorResponse(HttpStatusFor(held), held.message()));
}

Result<ShareAnswer> ViewHttpApi::ReadOwnShares(SupervisedView& view, const std::set<int32_t>& partitions,
                                               const std::string& encoded_prefix, size_t limit) {
  // Another process's read of partitions it believes are ours: each must
  // still be, and caught up (a moved partition's rows here are stale).
  if (scale_out_reads_) {
    for (int32_t p : partitions)
      if (!supervisor_.ServesNow(view, p))
        return Status::Unavailable("view " + view.name + ": partition " + std::to_string(p) +
                                   " is not served by this process (" + supervisor_.owners()->url() +
                                   ") now; retry");
  }
  // Readers follow the view's alias: the live version, also while a new one
  // is being built, and its offsets. A version is dropped only once the
  // alias points elsewhere, so a table gone between resolving and reading
  // means a rebuild swapped it: resolve again (a reader in a loop met this
  // about once in ten rebuilds, RebuildTest).
  RocksDbStore& rocksdb = *supervisor_.rocksdb();
  for (int resolved = 1;; ++resolved) {
    auto table = rocksdb.ResolveAlias(view.name);
    if (!table.ok()) return table.status();
    auto answer = ReadSharesOfTable(view, *table, partitions, encoded_prefix, limit);
    if (answer.ok() || answer.status().code() != StatusCode::kNotFound || resolved == 3) return answer;
  }
}

Result<ShareAnswer> ViewHttpApi::ReadSharesOfTable(SupervisedView& view, const std::string& table,
                                                   const std::set<int32_t>& partitions,
                                                   const std::string& encoded_prefix, size_t limit) {
  RocksDbStore& rocksdb = *supervisor_.rocksdb();
  const std::string topic = supervisor_.SourceTopicOf(view);
  auto offsets_of = [&](const std::map<int32_t, int64_t>& all) {
    std::map<int32_t, int64_t> out;
    for (const auto& [p, next] : all)
      if (partitions.empty() || partitions.count(p)) out[p] = next;
    return out;
  };
  // Rows and offsets commit together, but are read apart: a write landing
  // in between would pair newer rows with older offsets. Such a write
  // changes the offsets, so read again until they held still.
  for (int attempt = 0;; ++attempt) {
    auto before = rocksdb.LoadOffsets(table, topic);
    if (!before.ok()) return before.status();
    auto shares = RocksDbViewStore::ReadShares(rocksdb, table, encoded_prefix, partitions, limit);
    if (!shares.ok()) return shares.status();
    auto after = rocksdb.LoadOffsets(table, topic);
    if (!after.ok()) return after.status();
    ShareAnswer out;
    out.next_offsets = offsets_of(*after);
    if (out.next_offsets != offsets_of(*before)) {
      if (attempt < 20) continue;
      return Status::Unavailable("view " + view.name + ": its rows changed under 20 reads in a row; retry");
    }
    out.table = table;
    out.shares = std::move(*shares);
    return out;
  }
}

void ViewHttpApi::HandleRebuild(const std::vector<SupervisedView*>& matching, const HttpRequest& req,
                                HttpReply reply) {
  if (req.method != "POST") return reply(ErrorResponse(405, "rebuild: use POST"));
  if (auto refused = CheckBearerToken(req, config_.views.feed.token)) return reply(std::move(*refused));
  std::string store = "rocksdb";
  if (auto s = req.query.find("store"); s != req.query.end()) store = s->second;
  if (store != "rocksdb")
    return reply(ErrorResponse(400,
                               "store: only the RocksDB copy is rebuilt inside the view process; rebuild the "
                               "Postgres copy with `freshet rebuild VIEW --config FILE`"));
  for (SupervisedView* v : matching) {
    if (v->store != "rocksdb") continue;
    if (Status requested = supervisor_.RequestRebuild(*v); !requested.ok())
      return reply(ErrorResponse(HttpStatusFor(requested), requested.message()));
    return reply(
        JsonResponse(202, {{"view", v->name}, {"store", "rocksdb"}, {"state", "rebuild requested"}}));
  }
  reply(ErrorResponse(404, "view " + matching.front()->name + " has no RocksDB copy"));
}

HttpResponse ViewHttpApi::OwnersJson(const std::string& view) {
  ViewOwners* owners = supervisor_.owners();
  if (!owners)
    return ErrorResponse(404,
                         "view " + view + ": scale-out is off in this process (set views.advertise_url)");
  std::vector<SupervisedView*> matching = supervisor_.Find(view);
  auto count = supervisor_.SourcePartitionCount(
      matching.empty() ? config_.kafka.topic : supervisor_.SourceTopicOf(*matching.front()), 0);
  if (!count.ok()) return ErrorResponse(503, count.status().message());
  nlohmann::json partitions = nlohmann::json::object();
  for (int32_t p = 0; p < *count; ++p) {
    auto owner = owners->Find(view, p);
    partitions[std::to_string(p)] = owner ? nlohmann::json{{"url", owner->url},
                                                           {"instance", owner->instance},
                                                           {"state", PartitionStateName(owner->state)}}
                                          : nlohmann::json{{"state", "unclaimed"}};
  }
  return JsonResponse(200, {{"view", view}, {"this_process", owners->url()}, {"partitions", partitions}});
}

}  // namespace freshet
