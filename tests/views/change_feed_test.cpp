// ChangeFeed driven without a server: a recording WebSocket and an
// in-memory ViewStore stand in for Beast and the stores, and the test plays
// the engine's thread (Committed, Tick) and the I/O threads (callbacks).
#include "live/change_feed.h"

#include <gtest/gtest.h>

#include <limits>

namespace freshet {
namespace {

// Records what the feed sends; `queued` is what the test says is still
// waiting on the wire (the feed's backpressure looks at it).
class RecordingSocket final : public WebSocket {
 public:
  using WebSocket::Send;
  void Send(std::shared_ptr<const std::string> message) override {
    sent.push_back(std::move(message));
    ++queued_now;
  }
  size_t queued() const override { return queued_now; }
  void Close(uint16_t code, const std::string& reason) override {
    close_code = code;
    close_reason = reason;
  }
  bool closed() const override { return close_code != 0; }
  std::string peer() const override { return "test"; }

  // The JSON messages sent since the last call; the wire drains them.
  std::vector<nlohmann::json> Take() {
    std::vector<nlohmann::json> out;
    for (const auto& m : sent) out.push_back(nlohmann::json::parse(*m));
    sent.clear();
    queued_now = 0;
    return out;
  }

  std::vector<std::shared_ptr<const std::string>> sent;
  size_t queued_now = 0;
  uint16_t close_code = 0;
  std::string close_reason;
};

// Rows in memory, in key order; feeds only read snapshots from a store.
class MemoryStore final : public ViewStore {
 public:
  const char* kind() const override { return "memory"; }
  std::string table_name() const override { return "t__v1"; }
  Result<std::map<int32_t, int64_t>> LoadOffsets() override { return offsets; }
  Status Write(const std::vector<RowWrite>&, const std::vector<OffsetAdvance>&,
               std::vector<RowChange>*) override {
    return Status::Internal("the feed never writes");
  }
  Result<std::vector<RowChange>> ReadRows(const std::string& encoded_prefix, size_t limit) override {
    std::vector<RowChange> out;
    for (const auto& [key, row] : rows) {
      if (out.size() >= limit) break;
      if (key.rfind(encoded_prefix, 0) == 0) out.push_back(RowChange{{key}, row, -1, -1, false, nullptr});
    }
    return out;
  }
  Result<std::vector<RowShare>> ReadPartitionShares(const std::string& encoded_prefix,
                                                    const std::set<int32_t>& partitions,
                                                    size_t limit) override {
    std::vector<RowShare> out;
    for (const RowShare& share : shares)
      if (out.size() < limit && share.key.rfind(encoded_prefix, 0) == 0 &&
          (partitions.empty() || partitions.count(share.partition)))
        out.push_back(share);
    return out;
  }
  std::map<std::string, nlohmann::json> rows;
  std::vector<RowShare> shares;
  std::map<int32_t, int64_t> offsets;
};

TableSpec Table() {
  TableSpec t;
  t.view_name = "t";
  t.key_columns = {{"k", "text"}};
  t.value_columns = {{"n", "bigint"}};
  return t;
}

RowChange Row(const std::string& key, int64_t n, int64_t offset, int32_t partition = 0) {
  return RowChange{{key}, {{"k", key}, {"n", n}}, partition, offset, false, nullptr};
}

std::vector<std::string> Types(const std::vector<nlohmann::json>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m["type"]);
  return out;
}

class ChangeFeedClients : public ::testing::Test {
 protected:
  ChangeFeedClients() : metrics_(registry_) {
    // No timing in these tests: heartbeats never fall due, and batch
    // frames go out at every flush unless a test says otherwise.
    options_.heartbeat = std::chrono::hours(1);
    options_.batch_window = std::chrono::milliseconds(0);
  }

  void MakeFeed() { feed_ = std::make_unique<ChangeFeed>("t", "memory", Table(), options_, metrics_); }

  // A client that connected and completed the handshake.
  struct Client {
    std::shared_ptr<RecordingSocket> socket;
    WebSocketCallbacks callbacks;
  };
  Client Connect(FeedRequest request = {}) {
    if (!feed_) MakeFeed();
    Client c{std::make_shared<RecordingSocket>(), {}};
    c.callbacks = feed_->Attach(c.socket, std::move(request));
    c.callbacks.on_open();
    return c;
  }
  // Connects and serves its snapshot, so the client is live.
  Client ConnectLive(FeedRequest request = {}) {
    Client c = Connect(std::move(request));
    feed_->Tick(&store_, store_.offsets);
    c.socket->Take();
    return c;
  }
  void Commit(std::vector<RowChange> rows, int64_t before, int64_t after) {
    feed_->Committed(std::move(rows), {{0, before}}, {{0, after}});
  }

  MetricsRegistry registry_;
  FeedMetrics metrics_;
  ChangeFeedOptions options_;
  MemoryStore store_;
  std::unique_ptr<ChangeFeed> feed_;
};

TEST_F(ChangeFeedClients, NewClientGetsHelloThenSnapshotThenChanges) {
  store_.rows = {{"a", {{"k", "a"}, {"n", 1}}}, {"b", {{"k", "b"}, {"n", 2}}}};
  store_.offsets = {{0, 5}};
  Client c = Connect();
  auto hello = c.socket->Take();
  ASSERT_EQ(Types(hello), (std::vector<std::string>{"hello"}));
  EXPECT_EQ(hello[0]["columns"], (nlohmann::json{"k", "n"}));
  EXPECT_EQ(hello[0]["key_columns"], (nlohmann::json{"k"}));
  EXPECT_TRUE(feed_->snapshots_wanted());

  // Nothing is read while a write is in flight (no store this tick).
  feed_->Tick(nullptr, store_.offsets);
  EXPECT_TRUE(c.socket->Take().empty());

  feed_->Tick(&store_, store_.offsets);
  auto snapshot = c.socket->Take();
  ASSERT_EQ(Types(snapshot), (std::vector<std::string>{"snapshot"}));
  EXPECT_EQ(snapshot[0]["done"], true);
  EXPECT_EQ(snapshot[0]["rows"].size(), 2u);
  EXPECT_EQ(snapshot[0]["offsets"], (nlohmann::json{{"0", 5}}));
  EXPECT_FALSE(feed_->snapshots_wanted());

  Commit({Row("a", 3, 5)}, 5, 6);
  auto changes = c.socket->Take();
  ASSERT_EQ(Types(changes), (std::vector<std::string>{"change", "progress"}));
  EXPECT_EQ(changes[0]["op"], "upsert");
  EXPECT_EQ(changes[0]["row"]["n"], 3);
  EXPECT_EQ(changes[0]["offset"], 5);
  EXPECT_EQ(changes[1]["offsets"], (nlohmann::json{{"0", 6}}));
}

TEST_F(ChangeFeedClients, SnapshotIsSentInChunks) {
  options_.snapshot_chunk_rows = 2;
  for (const char* k : {"a", "b", "c", "d", "e"}) store_.rows[k] = {{"k", k}, {"n", 0}};
  Client c = Connect();
  c.socket->Take();
  feed_->Tick(&store_, store_.offsets);
  auto chunks = c.socket->Take();
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["done"], false);
  EXPECT_EQ(chunks[2]["done"], true);
  EXPECT_EQ(chunks[0]["rows"].size() + chunks[1]["rows"].size() + chunks[2]["rows"].size(), 5u);
}

TEST_F(ChangeFeedClients, FilteredClientGetsOnlyItsKeys) {
  FeedRequest request;
  request.filter = {"b", true};
  Client c = ConnectLive(request);
  Commit({Row("a", 1, 0), Row("b", 2, 1), Row("bb", 3, 2)}, 0, 3);
  auto messages = c.socket->Take();
  ASSERT_EQ(Types(messages), (std::vector<std::string>{"change", "progress"}));
  EXPECT_EQ(messages[0]["key"], (nlohmann::json{"b"}));
}

// A client whose socket is busy gets, once it drains, only the latest
// change of each key, in the order the latest changes were committed.
TEST_F(ChangeFeedClients, SlowClientGetsTheLatestChangePerKey) {
  options_.max_in_flight = 1;
  Client c = ConnectLive();
  c.socket->queued_now = 1;  // the wire is full
  Commit({Row("a", 1, 0), Row("b", 1, 1)}, 0, 2);
  Commit({Row("a", 2, 2)}, 2, 3);
  Commit({Row("a", 3, 3)}, 3, 4);
  EXPECT_TRUE(c.socket->sent.empty());
  EXPECT_EQ(metrics_.coalesced.value(), 2u);
  EXPECT_EQ(metrics_.pending_changes.load(), 2);

  std::vector<nlohmann::json> got;
  while (true) {
    c.socket->queued_now = 0;
    c.callbacks.on_drained();
    auto messages = c.socket->Take();
    if (messages.empty()) break;
    got.insert(got.end(), messages.begin(), messages.end());
  }
  ASSERT_EQ(Types(got), (std::vector<std::string>{"change", "change", "progress"}));
  EXPECT_EQ(got[0]["key"], (nlohmann::json{"b"}));
  EXPECT_EQ(got[1]["key"], (nlohmann::json{"a"}));
  EXPECT_EQ(got[1]["row"]["n"], 3);
  EXPECT_EQ(got[2]["offsets"], (nlohmann::json{{"0", 4}}));
  EXPECT_EQ(metrics_.pending_changes.load(), 0);
}

TEST_F(ChangeFeedClients, ClientTooFarBehindIsResetAndGetsAFreshSnapshot) {
  options_.max_in_flight = 1;
  options_.max_pending = 2;
  Client c = ConnectLive();
  c.socket->queued_now = 1;
  Commit({Row("a", 1, 0), Row("b", 1, 1)}, 0, 2);
  EXPECT_TRUE(c.socket->sent.empty());  // two keys pending: still within bounds
  Commit({Row("c", 1, 2)}, 2, 3);
  auto reset = c.socket->Take();
  ASSERT_EQ(Types(reset), (std::vector<std::string>{"reset"}));
  EXPECT_NE(reset[0]["reason"].get<std::string>().find("more than 2 changes pending"), std::string::npos);
  EXPECT_EQ(metrics_.resets.value(), 1u);
  EXPECT_EQ(metrics_.pending_changes.load(), 0);
  EXPECT_TRUE(feed_->snapshots_wanted());

  // Until the snapshot, it gets no changes; then the snapshot holds them.
  Commit({Row("d", 1, 3)}, 3, 4);
  EXPECT_TRUE(c.socket->Take().empty());
  for (const char* k : {"a", "b", "c", "d"}) store_.rows[k] = {{"k", k}, {"n", 1}};
  store_.offsets = {{0, 4}};
  feed_->Tick(&store_, store_.offsets);
  auto snapshot = c.socket->Take();
  ASSERT_EQ(Types(snapshot), (std::vector<std::string>{"snapshot"}));
  EXPECT_EQ(snapshot[0]["rows"].size(), 4u);
  EXPECT_EQ(snapshot[0]["offsets"], (nlohmann::json{{"0", 4}}));
}

// Batch clients that follow every row share one frame per flush: the same
// bytes, built once, with the offsets riding along.
TEST_F(ChangeFeedClients, BatchClientsShareOneFrame) {
  FeedRequest batch;
  batch.batch = true;
  Client first = ConnectLive(batch);
  Client second = ConnectLive(batch);
  Commit({Row("a", 1, 0), Row("b", 2, 1)}, 0, 2);
  ASSERT_EQ(first.socket->sent.size(), 1u);
  ASSERT_EQ(second.socket->sent.size(), 1u);
  EXPECT_EQ(first.socket->sent[0], second.socket->sent[0]);  // one shared message
  auto frame = first.socket->Take()[0];
  EXPECT_EQ(frame["type"], "changes");
  EXPECT_EQ(frame["changes"].size(), 2u);
  EXPECT_EQ(frame["offsets"], (nlohmann::json{{"0", 2}}));
}

TEST_F(ChangeFeedClients, BatchFrameWaitsForItsWindow) {
  options_.batch_window = std::chrono::hours(1);
  FeedRequest batch;
  batch.batch = true;
  Client c = ConnectLive(batch);
  EXPECT_EQ(feed_->TimeUntilDue(), std::chrono::milliseconds::max());
  Commit({Row("a", 1, 0)}, 0, 1);  // the first frame goes out at once
  ASSERT_EQ(c.socket->Take().size(), 1u);
  Commit({Row("a", 2, 1)}, 1, 2);
  Commit({Row("b", 1, 2)}, 2, 3);
  EXPECT_TRUE(c.socket->sent.empty());
  EXPECT_GT(feed_->TimeUntilDue(), std::chrono::minutes(59));
}

// A batch client whose socket is still busy when the frame goes out takes
// the slow path: coalesced per key, and reset past max_pending.
TEST_F(ChangeFeedClients, BusyBatchClientFallsBackToItsPendingListAndIsReset) {
  options_.max_pending = 2;
  FeedRequest batch;
  batch.batch = true;
  Client busy = ConnectLive(batch);
  Client quick = ConnectLive(batch);
  busy.socket->queued_now = 2;  // a batch client's in-flight limit
  Commit({Row("a", 1, 0), Row("a", 2, 1)}, 0, 2);
  EXPECT_TRUE(busy.socket->sent.empty());
  EXPECT_EQ(quick.socket->Take().size(), 1u);

  busy.socket->queued_now = 0;
  busy.callbacks.on_drained();
  auto pending = busy.socket->Take();
  ASSERT_EQ(Types(pending), (std::vector<std::string>{"changes", "progress"}));
  ASSERT_EQ(pending[0]["changes"].size(), 1u);  // "a" coalesced
  EXPECT_EQ(pending[0]["changes"][0]["row"]["n"], 2);

  busy.socket->queued_now = 2;
  Commit({Row("a", 3, 2), Row("b", 1, 3), Row("c", 1, 4)}, 2, 5);
  EXPECT_EQ(Types(busy.socket->Take()), (std::vector<std::string>{"reset"}));
  EXPECT_EQ(Types(quick.socket->Take()), (std::vector<std::string>{"changes"}));
}

class ChangeFeedResume : public ChangeFeedClients {
 protected:
  // One client keeps the feed recording; two flushes of two changes each.
  void SetUp() override {
    watcher_ = ConnectLive();
    Commit({Row("a", 1, 0), Row("b", 1, 1)}, 0, 2);
    Commit({Row("a", 2, 2), Row("c", 1, 3)}, 2, 4);
    watcher_.socket->Take();
  }
  FeedRequest From(int64_t offset) {
    FeedRequest r;
    r.from = std::map<int32_t, int64_t>{{0, offset}};
    return r;
  }
  Client watcher_;
};

TEST_F(ChangeFeedResume, ReconnectGetsExactlyTheChangesItMissed) {
  Client c = Connect(From(2));
  EXPECT_FALSE(feed_->snapshots_wanted());
  auto messages = c.socket->Take();
  ASSERT_EQ(Types(messages), (std::vector<std::string>{"hello", "resume", "change", "change", "progress"}));
  EXPECT_EQ(messages[1]["offsets"], (nlohmann::json{{"0", 2}}));
  EXPECT_EQ(messages[2]["offset"], 2);
  EXPECT_EQ(messages[3]["offset"], 3);
  EXPECT_EQ(messages[4]["offsets"], (nlohmann::json{{"0", 4}}));
  EXPECT_EQ(metrics_.resumes.value(), 1u);
}

TEST_F(ChangeFeedResume, ReconnectAtTheEndGetsNoChanges) {
  Client c = Connect(From(4));
  EXPECT_EQ(Types(c.socket->Take()), (std::vector<std::string>{"hello", "resume", "progress"}));
}

TEST_F(ChangeFeedResume, OffsetsTheHistoryDoesNotCoverGetASnapshot) {
  Client ahead = Connect(From(5));
  EXPECT_EQ(Types(ahead.socket->Take()), (std::vector<std::string>{"hello"}));
  EXPECT_TRUE(feed_->snapshots_wanted());
  FeedRequest other_partition;
  other_partition.from = std::map<int32_t, int64_t>{{1, 0}};
  Client elsewhere = Connect(other_partition);
  EXPECT_EQ(Types(elsewhere.socket->Take()), (std::vector<std::string>{"hello"}));
}

TEST_F(ChangeFeedResume, HistoryKeepsOnlyTheNewestChanges) {
  options_.history_changes = 2;
  MakeFeed();
  watcher_ = ConnectLive();
  Commit({Row("a", 1, 0), Row("b", 1, 1)}, 0, 2);
  Commit({Row("a", 2, 2), Row("c", 1, 3)}, 2, 4);  // the first flush is dropped
  Client old = Connect(From(0));
  EXPECT_EQ(Types(old.socket->Take()), (std::vector<std::string>{"hello"}));
  Client recent = Connect(From(2));
  EXPECT_EQ(Types(recent.socket->Take()),
            (std::vector<std::string>{"hello", "resume", "change", "change", "progress"}));
}

// After a restart or a rebalance a partition's history starts over: the
// gap between flushes was never seen, so nobody resumes across it.
TEST_F(ChangeFeedResume, AGapInOffsetsStartsTheHistoryOver) {
  Commit({Row("d", 1, 10)}, 10, 11);
  Client before_gap = Connect(From(2));
  EXPECT_EQ(Types(before_gap.socket->Take()), (std::vector<std::string>{"hello"}));
  Client after_gap = Connect(From(10));
  EXPECT_EQ(Types(after_gap.socket->Take()),
            (std::vector<std::string>{"hello", "resume", "change", "progress"}));
}

TEST_F(ChangeFeedResume, ResetAllDropsTheHistoryAndResnapshotsEveryone) {
  feed_->ResetAll("a new version went live");
  EXPECT_EQ(Types(watcher_.socket->Take()), (std::vector<std::string>{"reset"}));
  Client c = Connect(From(2));
  EXPECT_EQ(Types(c.socket->Take()), (std::vector<std::string>{"hello"}));
  EXPECT_TRUE(feed_->snapshots_wanted());
}

TEST_F(ChangeFeedClients, RecordsOnlyWhileSomeoneMayResume) {
  options_.keep_history_after_last_client = std::chrono::hours(1);
  MakeFeed();
  EXPECT_FALSE(feed_->recording());
  Client c = ConnectLive();
  EXPECT_TRUE(feed_->recording());
  c.callbacks.on_close();
  EXPECT_EQ(feed_->clients(), 0u);
  EXPECT_TRUE(feed_->recording());  // kept for a reconnect
}

TEST_F(ChangeFeedClients, HistoryIsDroppedWhenNobodyCameBack) {
  options_.keep_history_after_last_client = std::chrono::milliseconds(0);
  MakeFeed();
  Client c = ConnectLive();
  Commit({Row("a", 1, 0)}, 0, 1);
  c.callbacks.on_close();
  EXPECT_FALSE(feed_->recording());
  FeedRequest from;
  from.from = std::map<int32_t, int64_t>{{0, 0}};
  Client back = Connect(from);
  EXPECT_EQ(Types(back.socket->Take()), (std::vector<std::string>{"hello"}));
}

TEST_F(ChangeFeedClients, ClosesAClientThatSendsAMessage) {
  Client c = ConnectLive();
  c.callbacks.on_message("hi");
  EXPECT_EQ(c.socket->close_code, kClosePolicy);
}

TEST(ParseFeedOffsets, ReadsPartitionOffsetPairs) {
  auto offsets = ParseFeedOffsets("0:120,1:88");
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ(*offsets, (std::map<int32_t, int64_t>{{0, 120}, {1, 88}}));
  EXPECT_TRUE(ParseFeedOffsets("")->empty());
}

TEST(ParseFeedOffsets, RefusesMalformedPairsNamingThem) {
  for (const char* bad : {"0", "0:", ":5", "x:1", "0:1x", "-1:5", "0:-5", "0:1,,1:2"}) {
    auto offsets = ParseFeedOffsets(bad);
    EXPECT_EQ(offsets.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseFeedOffsets("0:1,zz").status().message().find("\"zz\""), std::string::npos);
}

// What another view process's relay asks for (live/feed_relay.h): some
// partitions only, each change as that partition's share, none coalesced.
RowChange ShareRow(const std::string& key, int64_t n, int64_t offset, int32_t partition) {
  RowChange change = Row(key, n * 10, offset, partition);  // the whole local row differs from the share
  change.has_share = true;
  change.share = {{"n", n}};
  return change;
}

TEST_F(ChangeFeedClients, AForwardingProcessGetsSharesOfItsPartitionsOnlyAndEveryOffset) {
  options_.share_messages = true;
  store_.shares = {RowShare{"a", 1, {{"n", 4}}}, RowShare{"a", 2, {{"n", 5}}}, RowShare{"b", 2, {{"n", 6}}}};
  store_.offsets = {{1, 10}, {2, 20}};
  FeedRequest request;
  request.partitions = {2};
  request.shares = true;
  request.batch = true;
  Client c = Connect(request);
  feed_->Tick(&store_, store_.offsets);
  auto snapshot = c.socket->Take();
  ASSERT_EQ(Types(snapshot), (std::vector<std::string>{"hello", "snapshot"}));
  EXPECT_EQ(snapshot[1]["shares"],
            (nlohmann::json{{{"key", {"a"}}, {"partition", 2}, {"share", {{"n", 5}}}},
                            {{"key", {"b"}}, {"partition", 2}, {"share", {{"n", 6}}}}}));
  EXPECT_EQ(snapshot[1]["offsets"], (nlohmann::json{{"2", 20}}));

  // The socket is busy: the changes wait, and the same key's two changes
  // of partition 2 both stay (a relay sends each offset on).
  c.socket->queued_now = 100;
  feed_->Committed({ShareRow("a", 7, 10, 1), ShareRow("a", 8, 20, 2), ShareRow("a", 9, 21, 2)},
                   {{1, 10}, {2, 20}}, {{1, 11}, {2, 22}});
  c.socket->Take();
  c.callbacks.on_drained();
  auto changes = c.socket->Take();
  ASSERT_FALSE(changes.empty());
  ASSERT_EQ(changes[0]["type"], "changes");
  ASSERT_EQ(changes[0]["changes"].size(), 2u) << changes[0].dump();
  EXPECT_EQ(changes[0]["changes"][0]["share"], (nlohmann::json{{"n", 8}}));
  EXPECT_EQ(changes[0]["changes"][0]["offset"], 20);
  EXPECT_EQ(changes[0]["changes"][1]["share"], (nlohmann::json{{"n", 9}}));
  EXPECT_FALSE(changes[0]["changes"][0].contains("row"));
}

TEST_F(ChangeFeedClients, APartitionJustAssignedCanBeResumedBeforeItsFirstFlush) {
  options_.share_messages = true;
  Client other = ConnectLive();  // history is being kept
  Commit({Row("a", 1, 4)}, 4, 5);
  // Partition 3 came to this process at offset 40 and has had nothing to
  // write since: a relay resumes it from 40 without a snapshot.
  feed_->Tick(&store_, {{0, 5}, {3, 40}});
  FeedRequest request;
  request.partitions = {3};
  request.shares = true;
  request.from = std::map<int32_t, int64_t>{{3, 40}};
  Client c = Connect(request);
  EXPECT_EQ(Types(c.socket->Take()), (std::vector<std::string>{"hello", "resume", "progress"}));
  // Offsets before the history's start are not resumable.
  request.from = std::map<int32_t, int64_t>{{3, 39}};
  Client late = Connect(request);
  EXPECT_EQ(Types(late.socket->Take()), (std::vector<std::string>{"hello"}));
  EXPECT_TRUE(feed_->snapshots_wanted());
}

TEST(FeedRequestParsing, PartitionLists) {
  EXPECT_EQ(*ParsePartitionList("0,3,7"), (std::set<int32_t>{0, 3, 7}));
  EXPECT_EQ(*ParsePartitionList("5"), (std::set<int32_t>{5}));
  EXPECT_FALSE(ParsePartitionList("").ok());
  EXPECT_FALSE(ParsePartitionList("1,,2").ok());
  EXPECT_FALSE(ParsePartitionList("-1").ok());
  EXPECT_FALSE(ParsePartitionList("x").ok());
}

// Time-driven behaviour, on a clock that moves only when the test says.
class ChangeFeedTime : public ChangeFeedClients {
 protected:
  ChangeFeedTime() { options_.clock = &clock_; }
  ManualClock clock_;
};

TEST_F(ChangeFeedTime, AQuietFeedSendsProgressOnlyOnceTheHeartbeatIsDue) {
  options_.heartbeat = std::chrono::seconds(5);
  store_.offsets = {{0, 7}};
  Client c = ConnectLive();
  feed_->Tick(&store_, store_.offsets);  // the snapshot's tick counted as the last progress
  clock_.Advance(std::chrono::milliseconds(4900));
  feed_->Tick(&store_, store_.offsets);
  EXPECT_TRUE(c.socket->Take().empty());
  clock_.Advance(std::chrono::milliseconds(200));
  feed_->Tick(&store_, store_.offsets);
  auto beat = c.socket->Take();
  ASSERT_EQ(Types(beat), (std::vector<std::string>{"progress"}));
  EXPECT_EQ(beat[0]["offsets"], (nlohmann::json{{"0", 7}}));
  EXPECT_EQ(beat[0]["ts_ms"], clock_.WallMillis());
}

TEST_F(ChangeFeedTime, HistoryOutlivesTheLastClientOnlyForItsKeepTime) {
  options_.keep_history_after_last_client = std::chrono::minutes(10);
  Client c = ConnectLive();
  ASSERT_TRUE(feed_->recording());
  Commit({Row("a", 1, 0)}, 0, 1);
  c.callbacks.on_close();
  clock_.Advance(std::chrono::minutes(9));
  EXPECT_TRUE(feed_->recording());
  Commit({Row("a", 2, 1)}, 1, 2);
  FeedRequest back;
  back.from = std::map<int32_t, int64_t>{{0, 1}};
  Client again = Connect(back);
  EXPECT_EQ(Types(again.socket->Take()), (std::vector<std::string>{"hello", "resume", "change", "progress"}));
  again.callbacks.on_close();
  clock_.Advance(std::chrono::minutes(11));
  EXPECT_FALSE(feed_->recording());  // and the history is gone
  Client late = Connect(back);
  EXPECT_EQ(Types(late.socket->Take()), (std::vector<std::string>{"hello"}));
  EXPECT_TRUE(feed_->snapshots_wanted());
}

TEST_F(ChangeFeedTime, BatchFramesWaitOutTheirWindow) {
  options_.batch_window = std::chrono::milliseconds(20);
  FeedRequest request;
  request.batch = true;
  Client c = ConnectLive(request);
  // The first frame after a quiet spell goes at once...
  Commit({Row("a", 1, 0)}, 0, 1);
  EXPECT_EQ(Types(c.socket->Take()), (std::vector<std::string>{"changes"}));
  // ...the next waits until the window has passed since it.
  clock_.Advance(std::chrono::milliseconds(5));
  Commit({Row("b", 1, 1)}, 1, 2);
  EXPECT_TRUE(c.socket->Take().empty());
  EXPECT_EQ(feed_->TimeUntilDue(), std::chrono::milliseconds(15));
  clock_.Advance(std::chrono::milliseconds(15));
  feed_->Tick(&store_, {{0, 2}});
  auto frame = c.socket->Take();
  ASSERT_EQ(Types(frame), (std::vector<std::string>{"changes"}));
  EXPECT_EQ(frame[0]["changes"][0]["key"], (nlohmann::json{"b"}));
  EXPECT_EQ(frame[0]["offsets"], (nlohmann::json{{"0", 2}}));
}

}  // namespace
}  // namespace freshet
