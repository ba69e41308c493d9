#include "live/change_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "core/envelope.h"
#include "views/partition_rows.h"

namespace freshet {

namespace {

std::shared_ptr<const std::string> Message(const nlohmann::json& j) {
  return std::make_shared<const std::string>(j.dump());
}

}  // namespace

FeedMetrics::FeedMetrics(MetricsRegistry& registry)
    : clients(registry.AddGauge("freshet_feed_clients", "Connected change feed clients")),
      messages(registry.AddCounter("freshet_feed_messages_total", "Change feed messages queued to clients")),
      coalesced(registry.AddCounter(
          "freshet_feed_coalesced_total",
          "Changes replaced by a newer change of the same key before a slow client got them")),
      resets(registry.AddCounter("freshet_feed_resets_total",
                                 "Clients that fell too far behind and were sent a fresh snapshot")),
      resumes(registry.AddCounter("freshet_feed_resumes_total",
                                  "Reconnects served from history, without a snapshot")),
      snapshots(registry.AddCounter("freshet_feed_snapshots_total", "Snapshots sent")),
      pending(
          registry.AddGauge("freshet_feed_pending_changes",
                            "Changes held for slow clients (at most views.feed.max_pending per client)")) {}

Result<std::map<int32_t, int64_t>> ParseFeedOffsets(const std::string& text) {
  std::map<int32_t, int64_t> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string pair = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = pair.find(':');
    char* end1 = nullptr;
    char* end2 = nullptr;
    std::string p = pair.substr(0, colon), o = colon == std::string::npos ? "" : pair.substr(colon + 1);
    long partition = std::strtol(p.c_str(), &end1, 10);
    long long offset = std::strtoll(o.c_str(), &end2, 10);
    if (p.empty() || o.empty() || *end1 != '\0' || *end2 != '\0' || partition < 0 || offset < 0)
      return Status::InvalidArgument(
          "from: expected partition:offset pairs separated by commas, e.g. 0:120,1:88; got \"" + pair + "\"");
    out[static_cast<int32_t>(partition)] = offset;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

nlohmann::json FeedHello(const std::string& view, const std::string& store, const TableSpec& table) {
  nlohmann::json keys = nlohmann::json::array(), columns = nlohmann::json::array();
  for (const auto& c : table.key_columns) {
    keys.push_back(c.name);
    columns.push_back(c.name);
  }
  for (const auto& c : table.value_columns) columns.push_back(c.name);
  return {{"type", "hello"}, {"view", view}, {"store", store}, {"key_columns", keys}, {"columns", columns}};
}

nlohmann::json FeedOffsetsJson(const std::map<int32_t, int64_t>& offsets) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [p, next] : offsets) out[std::to_string(p)] = std::max<int64_t>(next, 0);
  return out;
}

Result<std::set<int32_t>> ParsePartitionList(const std::string& text) {
  std::set<int32_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    long p = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || p < 0 || p > INT32_MAX)
      return Status::InvalidArgument(
          "partitions: expected partition numbers separated by commas, e.g. 0,3,7; got \"" + text + "\"");
    out.insert(static_cast<int32_t>(p));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

ChangeFeed::ChangeFeed(std::string view, std::string store, const TableSpec& table, ChangeFeedOptions options,
                       FeedMetrics& metrics)
    : view_(std::move(view)),
      store_(std::move(store)),
      options_(options),
      clock_(options.clock ? *options.clock : SystemClock()),
      metrics_(metrics) {
  hello_ = FeedHello(view_, store_, table).dump();
}

ChangeFeed::~ChangeFeed() = default;

size_t ChangeFeed::clients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

bool ChangeFeed::recording() {
  std::lock_guard lock(mu_);
  if (!clients_.empty()) return true;
  if (clock_.Now() - last_client_left_ < options_.keep_history_after_last_client &&
      last_client_left_ != std::chrono::steady_clock::time_point{})
    return true;
  if (!history_.empty() || !last_.empty()) {
    // Nobody came back in time: let the history go.
    history_.clear();
    history_size_ = 0;
    floor_.clear();
    last_.clear();
  }
  return false;
}

WebSocketCallbacks ChangeFeed::Attach(std::shared_ptr<WebSocket> socket, FeedRequest request) {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    Client& c = clients_[id];
    c.socket = std::move(socket);
    c.request = std::move(request);
  }
  metrics_.ClientsChanged(+1);
  WebSocketCallbacks callbacks;
  callbacks.on_open = [this, id] { OnOpen(id); };
  callbacks.on_message = [this, id](std::string) {
    // The feed takes no messages: the filter is fixed by the URL.
    std::lock_guard lock(mu_);
    if (auto it = clients_.find(id); it != clients_.end())
      it->second.socket->Close(kClosePolicy, "the change feed accepts no messages");
  };
  callbacks.on_drained = [this, id] {
    std::lock_guard lock(mu_);
    if (auto it = clients_.find(id); it != clients_.end()) Pump(it->second);
  };
  callbacks.on_close = [this, id] {
    metrics_.ClientsChanged(-1);
    std::lock_guard lock(mu_);
    if (auto it = clients_.find(id); it != clients_.end())
      metrics_.PendingChanged(-static_cast<int64_t>(it->second.pending.size()));
    clients_.erase(id);
    last_client_left_ = clock_.Now();
  };
  return callbacks;
}

bool ChangeFeed::CanResume(const FeedRequest& request) const {
  if (last_.empty() || !request.from) return false;  // no history yet
  if (request.shares && !options_.share_messages) return false;
  const std::map<int32_t, int64_t>& from = *request.from;
  auto covered = [&](int32_t p) {
    auto last = last_.find(p);
    auto it = from.find(p);
    return last != last_.end() && it != from.end() && it->second >= floor_.at(p) &&
           it->second <= last->second;
  };
  if (!request.partitions.empty()) {
    for (int32_t p : request.partitions)
      if (!covered(p)) return false;
    return true;
  }
  for (const auto& [p, last] : last_)
    if (!covered(p)) return false;
  return true;
}

std::string ChangeFeed::PendingKey(const Client& client, const Change& change) {
  // A forwarding process gets every change (no coalescing): it relays each
  // offset once to its own clients. It is reset if it falls behind.
  if (client.request.shares) return ShareKey(change.key, change.partition) + std::to_string(change.offset);
  return change.key;
}

void ChangeFeed::OnOpen(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& c = it->second;
  c.opened = true;
  c.socket->Send(std::make_shared<const std::string>(hello_));
  metrics_.messages.Add();
  if (CanResume(c.request)) return Resume(c);
  snapshots_wanted_ = true;  // served by the engine's next Tick
}

void ChangeFeed::Resume(Client& c) {
  metrics_.resumes.Add();
  c.socket->Send(Message({{"type", "resume"}, {"offsets", FeedOffsetsJson(*c.request.from)}}));
  metrics_.messages.Add();
  c.live = true;
  const auto& from = *c.request.from;
  for (const auto& flush : history_)
    for (const ChangePtr& change : flush) {
      auto f = from.find(change->partition);
      if (f != from.end() && change->offset >= f->second && c.request.Wants(change->partition) &&
          c.request.filter.Matches(change->key))
        Enqueue(c, change);
    }
  c.progress = ProgressMessage(last_);
  Pump(c);
}

std::shared_ptr<const std::string> ChangeFeed::ProgressMessage(
    const std::map<int32_t, int64_t>& offsets) const {
  return Message(
      {{"type", "progress"}, {"offsets", FeedOffsetsJson(offsets)}, {"ts_ms", clock_.WallMillis()}});
}

void ChangeFeed::Enqueue(Client& c, const ChangePtr& change) {
  std::string key = PendingKey(c, *change);
  auto found = c.pending_by_key.find(key);
  if (found != c.pending_by_key.end()) {
    // Latest wins; it moves to the back so offsets stay in order per partition.
    c.pending.erase(found->second);
    metrics_.coalesced.Add();
  } else {
    metrics_.PendingChanged(+1);
  }
  c.pending.push_back(change);
  c.pending_by_key[std::move(key)] = std::prev(c.pending.end());
}

size_t ChangeFeed::InFlightLimit(const Client& c) const {
  // A batch client gets everything that piled up while its socket was busy
  // in its next message: so few messages queued means few, larger frames
  // for a client (or a server) that cannot keep up with every flush.
  return c.request.batch ? 2 : options_.max_in_flight;
}

void ChangeFeed::Pump(Client& c) {
  if (!c.opened || !c.live) return;
  while (!c.pending.empty() && c.socket->queued() < InFlightLimit(c)) {
    if (c.request.batch) {
      std::string message = R"({"type":"changes","changes":[)";
      for (size_t n = 0; n < 10000 && !c.pending.empty(); ++n) {
        if (n) message += ',';
        message += *MessageFor(c, *c.pending.front());
        c.pending_by_key.erase(PendingKey(c, *c.pending.front()));
        c.pending.pop_front();
        metrics_.PendingChanged(-1);
      }
      message += "]}";
      c.socket->Send(std::move(message));
    } else {
      c.socket->Send(MessageFor(c, *c.pending.front()));
      c.pending_by_key.erase(PendingKey(c, *c.pending.front()));
      c.pending.pop_front();
      metrics_.PendingChanged(-1);
    }
    metrics_.messages.Add();
  }
  if (c.pending.empty() && c.progress && c.socket->queued() < InFlightLimit(c)) {
    c.socket->Send(std::move(c.progress));
    c.progress.reset();
    metrics_.messages.Add();
  }
}

void ChangeFeed::Reset(Client& c, const std::string& reason) {
  metrics_.PendingChanged(-static_cast<int64_t>(c.pending.size()));
  c.pending.clear();
  c.pending_by_key.clear();
  c.progress.reset();
  c.in_outbox = false;
  c.live = false;
  c.socket->Send(Message({{"type", "reset"}, {"reason", reason}}));
  metrics_.resets.Add();
  metrics_.messages.Add();
  snapshots_wanted_ = true;
}

void ChangeFeed::Committed(std::vector<RowChange> changes, const std::map<int32_t, int64_t>& before,
                           const std::map<int32_t, int64_t>& after) {
  std::sort(changes.begin(), changes.end(), [](const RowChange& a, const RowChange& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  std::vector<ChangePtr> built;
  built.reserve(changes.size());
  const int64_t committed_ms = clock_.WallMillis();
  for (RowChange& rc : changes) {
    auto change = std::make_shared<Change>();
    change->key = EncodeKey(rc.key);
    change->partition = rc.partition;
    change->offset = rc.offset;
    nlohmann::json j = {{"type", "change"},
                        {"op", rc.row.is_null() ? "delete" : "upsert"},
                        {"key", rc.key},
                        {"row", std::move(rc.row)},
                        {"partition", rc.partition},
                        {"offset", rc.offset},
                        {"committed_ms", committed_ms}};
    change->message = std::make_shared<const std::string>(j.dump());
    if (options_.share_messages && rc.has_share)
      change->share_message = Message({{"type", "change"},
                                       {"key", std::move(j["key"])},
                                       {"share", std::move(rc.share)},
                                       {"partition", rc.partition},
                                       {"offset", rc.offset},
                                       {"committed_ms", committed_ms}});
    built.push_back(std::move(change));
  }

  std::lock_guard lock(mu_);
  // History: a partition continues only if this flush starts where the
  // last one ended; otherwise (a restart, a rebalance) it starts here.
  for (const auto& [p, next] : after) {
    int64_t start = std::max<int64_t>(before.count(p) ? before.at(p) : 0, 0);
    auto last = last_.find(p);
    if (last == last_.end() || last->second != start) floor_[p] = start;
    last_[p] = std::max<int64_t>(next, 0);
  }
  if (options_.history_changes > 0) {
    history_.push_back(built);
    history_size_ += built.size();
    while (history_size_ > options_.history_changes && !history_.empty()) {
      // Everything before the dropped flush's end is no longer resumable.
      for (const ChangePtr& c : history_.front())
        if (c->partition >= 0) floor_[c->partition] = std::max(floor_[c->partition], c->offset + 1);
      history_size_ -= history_.front().size();
      history_.pop_front();
    }
  }

  auto progress = ProgressMessage(last_);
  // Fan-out fast path: a batch client that wants everything and is keeping
  // up shares one pre-built frame per batch window with all such clients,
  // without passing through its pending list (with 1,000 clients that list
  // work dominated).
  bool outbox_used = false;
  for (auto& [id, c] : clients_) {
    if (!c.opened || !c.live) continue;
    bool everything = c.request.filter.encoded.empty() && c.request.partitions.empty() && !c.request.shares &&
                      c.pending.empty();
    if (c.in_outbox || (everything && c.request.batch)) {
      if (built.empty() && !c.in_outbox) {
        c.progress = progress;
        Pump(c);
      } else {
        if (!c.in_outbox) c.outbox_from = outbox_.size();
        c.in_outbox = true;  // its progress rides on the outbox frame
        outbox_used = true;
      }
      continue;
    }
    if (everything && !c.request.batch && c.socket->queued() + built.size() <= options_.max_in_flight) {
      for (const ChangePtr& change : built) c.socket->Send(change->message);
      metrics_.messages.Add(built.size());
      c.progress = progress;
      Pump(c);
      continue;
    }
    for (const ChangePtr& change : built)
      if (c.request.Wants(change->partition) && c.request.filter.Matches(change->key)) Enqueue(c, change);
    if (c.pending.size() > options_.max_pending) {
      Reset(c, "client fell behind: more than " + std::to_string(options_.max_pending) + " changes pending");
      continue;
    }
    c.progress = progress;
    Pump(c);
  }
  if (outbox_used) {
    outbox_.insert(outbox_.end(), built.begin(), built.end());
    if (clock_.Now() - last_batch_sent_ >= options_.batch_window) SendOutbox();
  }
  last_progress_ = clock_.Now();
}

void ChangeFeed::SendOutbox() {
  bool any = false;
  for (auto& [id, c] : clients_) any = any || c.in_outbox;
  if (!any) {
    outbox_.clear();
    return;
  }
  // The offsets ride along: one frame per window instead of two. last_
  // covers every change in the outbox and nothing the clients lack.
  std::shared_ptr<const std::string> frame;
  if (!outbox_.empty()) {
    std::string message = R"({"type":"changes","changes":[)";
    for (size_t i = 0; i < outbox_.size(); ++i) message += (i ? "," : "") + *outbox_[i]->message;
    frame = std::make_shared<const std::string>(message + R"(],"offsets":)" + FeedOffsetsJson(last_).dump() +
                                                "}");
  }
  auto progress = ProgressMessage(last_);
  for (auto& [id, c] : clients_) {
    if (!c.in_outbox) continue;
    c.in_outbox = false;
    if (!c.opened || !c.live) continue;
    if (frame && c.outbox_from == 0 && c.socket->queued() < InFlightLimit(c)) {
      c.socket->Send(frame);
      metrics_.messages.Add();
      continue;
    }
    // Its socket is still busy (or it joined after the frame's first
    // changes): the slow path, coalesced per key.
    for (size_t i = c.outbox_from; i < outbox_.size(); ++i) Enqueue(c, outbox_[i]);
    if (c.pending.size() > options_.max_pending) {
      Reset(c, "client fell behind: more than " + std::to_string(options_.max_pending) + " changes pending");
      continue;
    }
    c.progress = progress;
    Pump(c);
  }
  outbox_.clear();
  last_batch_sent_ = clock_.Now();
}

bool ChangeFeed::snapshots_wanted() const {
  std::lock_guard lock(mu_);
  return snapshots_wanted_;
}

std::chrono::milliseconds ChangeFeed::TimeUntilDue() const {
  std::lock_guard lock(mu_);
  if (outbox_.empty()) return std::chrono::milliseconds::max();
  auto left = last_batch_sent_ + options_.batch_window - clock_.Now();
  return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(left));
}

void ChangeFeed::Tick(ViewStore* store, const std::map<int32_t, int64_t>& offsets) {
  bool wanted;
  {
    std::lock_guard lock(mu_);
    if (store && !store->building() && !last_.empty()) {
      // A partition the engine holds that no recorded flush has touched yet
      // (just assigned, already at the log's end): its history starts
      // here, empty, so that a forwarding process can resume it at once.
      for (const auto& [p, next] : offsets)
        if (!last_.count(p)) floor_[p] = last_[p] = std::max<int64_t>(next, 0);
    }
    wanted = snapshots_wanted_;
    auto now = clock_.Now();
    if (!outbox_.empty() && now - last_batch_sent_ >= options_.batch_window) SendOutbox();
    if (now - last_progress_ >= options_.heartbeat) {
      last_progress_ = now;
      SendOutbox();  // a heartbeat's offsets must not overtake changes not yet sent
      auto progress = ProgressMessage(offsets);
      for (auto& [id, c] : clients_) {
        if (!c.opened || !c.live) continue;
        c.progress = progress;
        Pump(c);
      }
    }
  }
  if (wanted && store) ServeSnapshots(*store, offsets);
}

void ChangeFeed::ServeSnapshots(ViewStore& store, const std::map<int32_t, int64_t>& engine_offsets) {
  // While a new version is built, snapshots come from the live one, with
  // its offsets.
  std::map<int32_t, int64_t> offsets = engine_offsets;
  if (store.building()) {
    auto live = store.LiveOffsets();
    if (!live.ok()) {
      spdlog::warn("view {}: feed snapshot failed: {}", view_, live.status().message());
      return;
    }
    offsets = *live;
  }
  // Which filters are waiting; each distinct one is read once.
  std::map<std::pair<std::string, bool>, std::vector<uint64_t>> waiting;
  {
    std::lock_guard lock(mu_);
    snapshots_wanted_ = false;
    for (auto& [id, c] : clients_)
      if (c.opened && !c.live && !c.request.shares)
        waiting[{c.request.filter.encoded, c.request.filter.exact}].push_back(id);
  }
  ServeShareSnapshots(store, offsets);
  for (const auto& [filter, ids] : waiting) {
    auto rows = store.ReadRows(filter.first, filter.second ? 2 : options_.max_snapshot_rows);
    if (!rows.ok()) {
      spdlog::warn("view {}: feed snapshot failed: {}", view_, rows.status().message());
      std::lock_guard lock(mu_);
      snapshots_wanted_ = true;  // try again on a later tick
      continue;
    }
    // One set of chunk messages, shared by every client of this filter.
    std::vector<std::shared_ptr<const std::string>> chunks;
    nlohmann::json batch = nlohmann::json::array();
    size_t sent = 0;
    bool truncated = !filter.second && rows->size() >= options_.max_snapshot_rows;
    FeedFilter match{filter.first, filter.second};
    auto emit = [&](bool done) {
      nlohmann::json m = {{"type", "snapshot"}, {"rows", std::move(batch)}, {"done", done}};
      if (done) {
        m["offsets"] = FeedOffsetsJson(offsets);
        if (truncated) m["truncated"] = true;
      }
      chunks.push_back(Message(m));
      batch = nlohmann::json::array();
    };
    for (RowChange& row : *rows) {
      if (!match.Matches(EncodeKey(row.key))) continue;
      batch.push_back({{"key", row.key}, {"row", std::move(row.row)}});
      if (++sent % options_.snapshot_chunk_rows == 0) emit(false);
    }
    emit(true);
    std::lock_guard lock(mu_);

    for (uint64_t id : ids) {
      auto it = clients_.find(id);
      if (it == clients_.end() || it->second.live) continue;
      Client& c = it->second;
      for (const auto& chunk : chunks) c.socket->Send(chunk);
      metrics_.messages.Add(chunks.size());
      metrics_.snapshots.Add();
      c.live = true;
    }
  }
}

void ChangeFeed::ServeShareSnapshots(ViewStore& store, const std::map<int32_t, int64_t>& offsets) {
  // Forwarding processes: each partition's shares of the rows, read once
  // per distinct filter and partition set.
  std::map<std::tuple<std::string, bool, std::set<int32_t>>, std::vector<uint64_t>> waiting;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, c] : clients_) {
      if (!c.opened || c.live || !c.request.shares) continue;
      // A partition that came to this process after the client asked may
      // be resumable now (see Tick).
      if (CanResume(c.request)) {
        Resume(c);
        continue;
      }
      waiting[{c.request.filter.encoded, c.request.filter.exact, c.request.partitions}].push_back(id);
    }
  }
  for (const auto& [filter, ids] : waiting) {
    const auto& [encoded, exact, partitions] = filter;
    auto shares = store.ReadPartitionShares(exact ? SharesOf(encoded) : encoded, partitions,
                                            exact ? 1 : options_.max_snapshot_rows);
    if (!shares.ok()) {
      spdlog::warn("view {}: feed snapshot failed: {}", view_, shares.status().message());
      std::lock_guard lock(mu_);
      snapshots_wanted_ = true;
      continue;
    }
    std::vector<std::shared_ptr<const std::string>> chunks;
    nlohmann::json batch = nlohmann::json::array();
    for (RowShare& share : *shares) {
      batch.push_back(
          {{"key", DecodeKey(share.key)}, {"partition", share.partition}, {"share", std::move(share.value)}});
      if (batch.size() == options_.snapshot_chunk_rows) {
        chunks.push_back(Message({{"type", "snapshot"}, {"shares", std::move(batch)}, {"done", false}}));
        batch = nlohmann::json::array();
      }
    }
    std::map<int32_t, int64_t> asked;
    for (const auto& [p, next] : offsets)
      if (partitions.empty() || partitions.count(p)) asked[p] = next;
    chunks.push_back(Message({{"type", "snapshot"},
                              {"shares", std::move(batch)},
                              {"done", true},
                              {"offsets", FeedOffsetsJson(asked)}}));
    std::lock_guard lock(mu_);
    for (uint64_t id : ids) {
      auto it = clients_.find(id);
      if (it == clients_.end() || it->second.live) continue;
      for (const auto& chunk : chunks) it->second.socket->Send(chunk);
      metrics_.messages.Add(chunks.size());
      metrics_.snapshots.Add();
      it->second.live = true;
    }
  }
}

void ChangeFeed::ResetAll(const std::string& reason) {
  std::lock_guard lock(mu_);
  outbox_.clear();
  // Offsets of the previous version do not describe the new rows: nobody
  // resumes into them.
  history_.clear();
  history_size_ = 0;
  floor_.clear();
  last_.clear();
  for (auto& [id, c] : clients_)
    if (c.opened && c.live) Reset(c, reason);
}

void ChangeFeed::CloseAll(uint16_t code, const std::string& reason) {
  std::lock_guard lock(mu_);
  for (auto& [id, c] : clients_) c.socket->Close(code, reason);
}

}  // namespace freshet
