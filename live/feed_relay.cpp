#include "live/feed_relay.h"

#include <spdlog/spdlog.h>

#include <set>
#include <vector>

#include "core/envelope.h"
#include "core/http.h"
#include "views/partition_rows.h"
#include "views/view_store.h"

namespace freshet {

namespace {

std::string Join(const std::set<int32_t>& partitions) {
  std::string out;
  for (int32_t p : partitions) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

}  // namespace

// One client's relayed feed. Everything runs on the loop's thread.
class FeedRelays::Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(FeedRelays& relays, std::string view, TableSpec table, int partition_count, std::string filter_query,
        std::shared_ptr<WebSocket> client, FeedRequest request)
      : relays_(relays),
        view_(std::move(view)),
        table_(std::move(table)),
        partition_count_(partition_count),
        filter_query_(std::move(filter_query)),
        client_(std::move(client)),
        request_(std::move(request)) {}

  void Start() {
    Send(FeedHello(view_, "rocksdb", table_));
    resuming_ = request_.from.has_value();
    if (resuming_) next_ = *request_.from;
    StartOver();
    Recheck();
  }

  // The client left, or the process stops.
  void Stop(std::optional<std::pair<uint16_t, std::string>> close) {
    if (stopped_) return;
    stopped_ = true;
    DropUpstreams();
    if (close) client_->Close(close->first, close->second);
  }

 private:
  struct Upstream {
    std::string url;
    std::set<int32_t> partitions;
    std::shared_ptr<WebSocketClientConnection> connection;
    bool ready = false;                // its snapshot is complete, or it resumed
    std::vector<nlohmann::json> held;  // changes and progress that came before the relay went live
  };

  void Send(const nlohmann::json& message) {
    client_->Send(message.dump());
    relays_.metrics_.messages.Add();
  }

  // Forgets every upstream and share and asks every partition's owner
  // again: from the client's resume point while it has not been sent
  // anything else, else for snapshots.
  void StartOver() {
    DropUpstreams();
    shares_.clear();
    live_ = false;
    if (!resuming_) next_.clear();
    unrouted_.clear();
    for (int32_t p = 0; p < partition_count_; ++p) unrouted_.insert(p);
    Route();
  }

  // The client gets a fresh snapshot (it fell behind, or a moved partition's
  // new owner cannot resume where the client is).
  void Reset(const std::string& reason) {
    spdlog::info("view {}: relayed feed to {} starts over: {}", view_, client_->peer(), reason);
    Send({{"type", "reset"}, {"reason", reason}});
    relays_.metrics_.resets.Add();
    resuming_ = false;
    StartOver();
  }

  void DropUpstreams() {
    ++generation_;  // their on_close callbacks are ignored
    auto upstreams = std::move(upstreams_);
    upstreams_.clear();
    for (auto& [id, up] : upstreams)
      if (up.connection) up.connection->Close();
  }

  // Opens an upstream for every unrouted partition whose owner serves it.
  void Route() {
    std::map<std::string, std::set<int32_t>> by_owner;
    for (int32_t p : unrouted_) {
      auto owner = relays_.owners_.Find(view_, p);
      if (owner && owner->state == PartitionState::kServing) by_owner[owner->url].insert(p);
    }
    for (auto& [url, partitions] : by_owner) {
      for (int32_t p : partitions) unrouted_.erase(p);
      Open(url, std::move(partitions));
    }
  }

  void Open(const std::string& url, std::set<int32_t> partitions) {
    std::string target =
        "/views/" + PercentEncode(view_) + "/feed?shares=1&batch=1&partitions=" + Join(partitions);
    if (!filter_query_.empty()) target += "&" + filter_query_;
    if (resuming_ || live_) {
      std::string from;
      for (int32_t p : partitions) {
        auto it = next_.find(p);
        from += (from.empty() ? "" : ",") + std::to_string(p) + ":" +
                std::to_string(it == next_.end() ? 0 : it->second);
      }
      target += "&from=" + from;
    }
    uint64_t id = next_upstream_++;
    Upstream& up = upstreams_[id];
    up.url = url;
    up.partitions = std::move(partitions);
    auto host_port = ParseHostPort(url.rfind("http://", 0) == 0 ? url.substr(7) : url, "advertise_url");
    if (!host_port.ok()) {
      spdlog::warn("view {}: owner {}: {}", view_, url, host_port.status().message());
      return Lost(id, generation_, host_port.status().message());
    }
    std::vector<std::pair<std::string, std::string>> headers;
    if (!relays_.options_.token.empty())
      headers.emplace_back("Authorization", "Bearer " + relays_.options_.token);
    std::weak_ptr<Relay> weak = weak_from_this();
    uint64_t generation = generation_;
    WebSocketClientCallbacks callbacks;
    callbacks.on_message = [weak, id, generation](std::string text) {
      if (auto self = weak.lock(); self && generation == self->generation_) self->OnUpstream(id, text);
    };
    callbacks.on_close = [weak, id, generation](std::string reason) {
      if (auto self = weak.lock(); self && generation == self->generation_)
        self->Lost(id, generation, reason);
    };
    up.connection = relays_.loop_.Connect(host_port->first, host_port->second, target, std::move(headers),
                                          std::move(callbacks));
  }

  // An upstream is gone (its owner died, released the partitions, or
  // refused them): its partitions wait for their next owner.
  void Lost(uint64_t id, uint64_t generation, const std::string& reason) {
    if (stopped_ || generation != generation_) return;
    auto it = upstreams_.find(id);
    if (it == upstreams_.end()) return;
    Upstream up = std::move(it->second);
    upstreams_.erase(it);
    // Retries against a dead owner repeat every recheck: only a lost live
    // upstream is news.
    if (up.ready)
      spdlog::info("view {}: relayed feed: partitions {} from {}: {}", view_, Join(up.partitions), up.url,
                   reason);
    else
      spdlog::debug("view {}: relayed feed: partitions {} from {}: {}", view_, Join(up.partitions), up.url,
                    reason);
    if (!live_ && up.ready && !resuming_) {
      // Its snapshot is already merged in: starting over is simplest.
      return StartOver();
    }
    if (!live_) {
      // A partial snapshot of these partitions must not stay.
      for (auto row = shares_.begin(); row != shares_.end();) {
        for (int32_t p : up.partitions) row->second.erase(p);
        row = row->second.empty() ? shares_.erase(row) : std::next(row);
      }
    }
    unrouted_.insert(up.partitions.begin(), up.partitions.end());
    if (up.connection) up.connection->Close();
  }

  // Every `recheck`: route partitions that lack an upstream, and move any
  // whose owner changed.
  void Recheck() {
    if (stopped_) return;
    std::vector<uint64_t> moved;
    for (const auto& [id, up] : upstreams_)
      for (int32_t p : up.partitions) {
        auto owner = relays_.owners_.Find(view_, p);
        if (!owner || owner->url != up.url || owner->state != PartitionState::kServing) {
          moved.push_back(id);
          break;
        }
      }
    for (uint64_t id : moved) Lost(id, generation_, "the partitions' owner changed");
    Route();
    std::weak_ptr<Relay> weak = weak_from_this();
    relays_.loop_.PostAfter(relays_.options_.recheck, [weak] {
      if (auto self = weak.lock()) self->Recheck();
    });
  }

  void OnUpstream(uint64_t id, const std::string& text) {
    auto it = upstreams_.find(id);
    if (it == upstreams_.end()) return;
    Upstream& up = it->second;
    auto message = nlohmann::json::parse(text, nullptr, false);
    const std::string type = message.is_object() ? message.value("type", "") : "";
    if (type == "hello") return;
    if (type == "resume") {
      up.ready = true;
      return MaybeGoLive();
    }
    if (type == "snapshot") {
      if (live_)
        return Reset("partitions " + Join(up.partitions) + " moved to " + up.url +
                     ", which no longer holds the changes since the client's offsets");
      if (resuming_) {
        // Some owner cannot resume where the client is: the client gets a
        // snapshot of everything instead.
        resuming_ = false;
        return StartOver();
      }
      for (auto& row : message["shares"]) {
        std::string key = EncodeKey(row["key"].get<std::vector<std::string>>());
        shares_[key][row["partition"].get<int32_t>()] = std::move(row["share"]);
      }
      if (!message.value("done", false)) return;
      TakeOffsets(up, message["offsets"]);
      up.ready = true;
      return MaybeGoLive();
    }
    if (type == "change" || type == "changes" || type == "progress") {
      // Until the client has its snapshot or resume, nothing moves on.
      if (!live_) return up.held.push_back(std::move(message));
      ForwardLive(up, message);
      return;
    }
    if (type == "reset")
      return Reset("an upstream feed from " + up.url + " was reset: " + message.value("reason", ""));
    if (type == "error") spdlog::warn("view {}: relayed feed from {}: {}", view_, up.url, text);
  }

  // A change, changes or progress message of a live upstream. False when
  // the relay started over (the upstreams are gone).
  bool ForwardLive(const Upstream& up, nlohmann::json& message) {
    const std::string type = message.value("type", "");
    if (type != "progress") {
      std::vector<nlohmann::json> changes;
      if (type == "change")
        changes.push_back(std::move(message));
      else
        for (auto& c : message["changes"]) changes.push_back(std::move(c));
      if (!Deliver(changes)) return false;
    }
    if (message.contains("offsets")) {
      TakeOffsets(up, message["offsets"]);
      SendProgress();
    }
    return true;
  }

  // An upstream's offsets, for its own partitions only.
  void TakeOffsets(const Upstream& up, const nlohmann::json& offsets) {
    if (!offsets.is_object()) return;
    for (const auto& [p, next] : offsets.items()) {
      int32_t partition = std::stoi(p);
      if (!up.partitions.count(partition)) continue;
      int64_t& mine = next_[partition];
      mine = std::max(mine, next.get<int64_t>());
    }
  }

  void MaybeGoLive() {
    if (live_ || !unrouted_.empty()) return;
    for (const auto& [id, up] : upstreams_)
      if (!up.ready) return;
    if (resuming_) {
      Send({{"type", "resume"}, {"offsets", FeedOffsetsJson(*request_.from)}});
      relays_.metrics_.resumes.Add();
    } else {
      SendSnapshot();
    }
    live_ = true;
    resuming_ = false;
    std::vector<uint64_t> ids;
    for (const auto& [id, up] : upstreams_) ids.push_back(id);
    for (uint64_t id : ids) {
      auto it = upstreams_.find(id);
      if (it == upstreams_.end()) return;
      std::vector<nlohmann::json> held = std::move(it->second.held);
      it->second.held.clear();
      for (auto& message : held)
        if (!ForwardLive(upstreams_.at(id), message)) return;
    }
    SendProgress();
  }

  void SendSnapshot() {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& [key, shares] : shares_) {
      rows.push_back({{"key", DecodeKey(key)}, {"row", WholeRow(key, shares)}});
      if (rows.size() == relays_.options_.snapshot_chunk_rows) {
        Send({{"type", "snapshot"}, {"rows", std::move(rows)}, {"done", false}});
        rows = nlohmann::json::array();
      }
    }
    Send({{"type", "snapshot"},
          {"rows", std::move(rows)},
          {"done", true},
          {"offsets", FeedOffsetsJson(next_)}});
    relays_.metrics_.snapshots.Add();
  }

  // The row as the client sees it: key columns, and the value columns
  // merged from every partition's share (in partition order).
  nlohmann::json WholeRow(const std::string& key, const std::map<int32_t, nlohmann::json>& shares) const {
    nlohmann::json whole;
    for (const auto& [p, share] : shares) AddShare(table_, share, &whole);
    return RowWithKey(table_, DecodeKey(key), std::move(whole));
  }

  // Applies upstream changes to the shares and sends each whole row on:
  // every offset once, in order per partition.
  bool Deliver(std::vector<nlohmann::json>& changes) {
    nlohmann::json batch = nlohmann::json::array();
    for (auto& change : changes) {
      int32_t partition = change.value("partition", -1);
      int64_t offset = change.value("offset", int64_t{-1});
      auto next = next_.find(partition);
      if (next != next_.end() && offset < next->second) continue;  // already delivered
      next_[partition] = offset + 1;
      std::string key = EncodeKey(change["key"].get<std::vector<std::string>>());
      auto& shares = shares_[key];
      if (change["share"].is_null())
        shares.erase(partition);
      else
        shares[partition] = std::move(change["share"]);
      nlohmann::json out = {{"type", "change"}, {"key", std::move(change["key"])}};
      if (shares.empty()) {
        shares_.erase(key);
        out["op"] = "delete";
        out["row"] = nullptr;
      } else {
        out["op"] = "upsert";
        out["row"] = WholeRow(key, shares);
      }
      out["partition"] = partition;
      out["offset"] = offset;
      out["committed_ms"] = change.value("committed_ms", int64_t{0});
      if (request_.batch)
        batch.push_back(std::move(out));
      else
        Send(out);
    }
    if (request_.batch && !batch.empty()) Send({{"type", "changes"}, {"changes", std::move(batch)}});
    if (client_->queued() > relays_.options_.max_pending) {
      Reset("client fell behind: more than " + std::to_string(relays_.options_.max_pending) +
            " messages queued");
      return false;
    }
    return true;
  }

  void SendProgress() {
    Send({{"type", "progress"}, {"offsets", FeedOffsetsJson(next_)}, {"ts_ms", NowMillis()}});
  }

  FeedRelays& relays_;
  const std::string view_;
  const TableSpec table_;
  const int partition_count_;
  const std::string filter_query_;
  std::shared_ptr<WebSocket> client_;
  const FeedRequest request_;

  bool stopped_ = false;
  bool live_ = false;                // the client has its snapshot or resume
  bool resuming_ = false;            // asking the owners for the changes since the client's `from`
  std::map<int32_t, int64_t> next_;  // per partition: the next offset the client has not seen
  std::map<std::string, std::map<int32_t, nlohmann::json>> shares_;  // encoded key -> partition -> share
  std::set<int32_t> unrouted_;                                       // partitions with no upstream
  std::map<uint64_t, Upstream> upstreams_;
  uint64_t next_upstream_ = 1;
  uint64_t generation_ = 0;  // bumped when the upstreams are dropped
};

FeedRelays::FeedRelays(const ViewOwners& owners, FeedRelayOptions options, FeedMetrics& metrics)
    : owners_(owners), options_(std::move(options)), metrics_(metrics) {}

FeedRelays::~FeedRelays() { Stop(); }

void FeedRelays::Stop() {
  CloseAll(kCloseGoingAway, "the view process is shutting down");
  loop_.Stop();
}

WebSocketCallbacks FeedRelays::Attach(std::string view, TableSpec table, int partition_count,
                                      std::string filter_query, std::shared_ptr<WebSocket> socket,
                                      FeedRequest request) {
  auto relay = std::make_shared<Relay>(*this, std::move(view), std::move(table), partition_count,
                                       std::move(filter_query), socket, std::move(request));
  metrics_.ClientsChanged(+1);
  uint64_t id = next_id_++;
  // The loop's map holds the relay; the socket's callbacks only point at it
  // (the relay holds the socket).
  loop_.Post([this, id, relay] { relays_[id] = relay; });
  std::weak_ptr<Relay> weak = relay;
  WebSocketCallbacks callbacks;
  callbacks.on_open = [this, weak] {
    loop_.Post([weak] {
      if (auto relay = weak.lock()) relay->Start();
    });
  };
  callbacks.on_message = [weak_socket = std::weak_ptr<WebSocket>(socket)](std::string) {
    if (auto socket = weak_socket.lock()) socket->Close(kClosePolicy, "the change feed accepts no messages");
  };
  callbacks.on_close = [this, id] {
    metrics_.ClientsChanged(-1);
    loop_.Post([this, id] {
      auto it = relays_.find(id);
      if (it == relays_.end()) return;
      it->second->Stop(std::nullopt);
      relays_.erase(it);
    });
  };
  return callbacks;
}

void FeedRelays::CloseAll(uint16_t code, const std::string& reason) {
  loop_.Post([this, code, reason] {
    for (auto& [id, relay] : relays_) relay->Stop(std::make_pair(code, reason));
  });
}

}  // namespace freshet
