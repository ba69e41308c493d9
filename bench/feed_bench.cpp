// Fan-out of the WebSocket change feed: N clients follow one view of a real
// `freshet views` process while events arrive at a fixed rate. Reports the
// messages delivered per second, commit-to-client latency (from the
// change's committed_ms to its arrival) and whether every client kept up
// (no resets, every change of the measured window received).
//
// Needs the local services (scripts/services start). The clients run in
// this process on two threads, so on a 2-core machine they compete with the
// view process and the broker: the figures are a floor, not a ceiling.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "bench/bench_util.h"
#include "core/envelope.h"
#include "core/http_client.h"
#include "core/kafka.h"

namespace freshet {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Options {
  std::string brokers = bench::DefaultBrokers();
  std::string pg_url = bench::DefaultPostgresUrl();
  std::string freshet = FRESHET_BINARY;
  int clients = 1000;
  int rate = 1000;  // changes per second
  int seconds = 20;
  int keys = 1000;
  int flush_ms = 20;
  int batch_window_ms = -1;  // -1: the view process default
  int warmup_seconds = 1;
  bool batch = false;
  std::string json_path;
};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One client: reads forever, counts changes and samples latencies.
class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(net::io_context& ioc, bool sample) : ws_(ioc), sample_(sample) {}

  void Start(uint16_t port, const std::string& target) {
    target_ = target;
    ws_.next_layer().async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                                   [self = shared_from_this(), port](beast::error_code ec) {
                                     if (ec) return self->Fail(ec);
                                     self->ws_.async_handshake("127.0.0.1:" + std::to_string(port),
                                                               self->target_, [self](beast::error_code ec2) {
                                                                 if (ec2) return self->Fail(ec2);
                                                                 self->Read();
                                                               });
                                   });
  }

  std::atomic<bool> snapshot_done{false};
  std::atomic<int64_t> changes{0};
  std::atomic<int> resets{0};
  std::atomic<bool> failed{false};
  std::vector<int64_t> latencies_us;  // read after the io thread stopped
  std::vector<int64_t> event_latencies_us;
  std::atomic<bool> measuring{false};

 private:
  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->Fail(ec);
      auto data = self->buffer_.data();  // a flat_buffer: one contiguous piece
      self->OnMessage(std::string_view(static_cast<const char*>(data.data()), data.size()));
      self->buffer_.consume(self->buffer_.size());
      self->Read();
    });
  }

  // memmem, not string::find: find scans for the first character ('"'),
  // which is everywhere in JSON, and that scan was the clients' top cost.
  static size_t Find(std::string_view m, std::string_view what, size_t from = 0) {
    if (from >= m.size()) return std::string_view::npos;
    const void* hit = memmem(m.data() + from, m.size() - from, what.data(), what.size());
    return hit ? static_cast<size_t>(static_cast<const char*>(hit) - m.data()) : std::string_view::npos;
  }

  void OnMessage(std::string_view m) {
    // Light parsing: the clients share the machine with the server.
    constexpr std::string_view kCommitted = R"("committed_ms":)";
    if (Find(m, kCommitted) != std::string_view::npos) {  // one change, or a batch of them
      int64_t now = NowMicros();
      size_t at = 0;
      while ((at = Find(m, kCommitted, at)) != std::string_view::npos) {
        at += kCommitted.size();
        changes.fetch_add(1, std::memory_order_relaxed);
        if (sample_ && measuring.load(std::memory_order_relaxed)) {
          // Numbers end at ',' or '}', so strtoll stops inside the buffer.
          latencies_us.push_back(now - std::strtoll(m.data() + at, nullptr, 10) * 1000);
          // The row's ts is the event's own time: event-to-client.
          size_t ts = Find(m, R"("ts":)", at);
          if (ts != std::string_view::npos)
            event_latencies_us.push_back(now - std::strtoll(m.data() + ts + 5, nullptr, 10) * 1000);
        }
      }
    } else if (Find(m, R"("type":"snapshot")") != std::string_view::npos &&
               Find(m, R"("done":true)") != std::string_view::npos) {
      snapshot_done = true;
    } else if (Find(m, R"("type":"reset")") != std::string_view::npos) {
      ++resets;
    }
  }

  void Fail(beast::error_code ec) {
    if (!failed.exchange(true)) std::fprintf(stderr, "client: %s\n", ec.message().c_str());
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::string target_;
  bool sample_;
};

int Run(const Options& o) {
  std::string topic = "feed-bench-" + std::to_string(getpid()) + "-" + std::to_string(NowMillis());
  KafkaClientOptions kafka{o.brokers, {}};
  bench::TopicsToDelete throwaway(o.brokers);
  throwaway.Add(topic);
  if (Status st = EnsureTopic(kafka, topic, 4, 1, std::chrono::seconds(30)); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  int port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  std::string dir = "/tmp/" + topic;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/freshet.json") << nlohmann::json{
      {"kafka", {{"brokers", o.brokers}, {"topic", topic}}},
      {"postgres", {{"url", o.pg_url}}},
      {"log_level", "warn"},
      {"views",
       {{"listen", "127.0.0.1:" + std::to_string(port)},
        {"group_id", topic},
        {"rocksdb_path", dir + "/views.rocksdb"},
        {"feed", o.batch_window_ms >= 0
                     ? nlohmann::json{{"max_clients", o.clients + 10}, {"batch_window_ms", o.batch_window_ms}}
                     : nlohmann::json{{"max_clients", o.clients + 10}}},
        {"definitions", nlohmann::json::array({{{"name", "fanout"},
                                                {"kind", "latest"},
                                                {"stores", {"rocksdb"}},
                                                {"key", {{"id", "/id"}}},
                                                {"columns",
                                                 {{"n", {{"from", "/n"}, {"type", "bigint"}}},
                                                  {"ts", {{"from", "$ts"}, {"type", "bigint"}}}}},
                                                {"freshness", {{"flush_interval_ms", o.flush_ms}}}}})}}}};
  pid_t views = bench::Spawn({o.freshet, "views", "--config", dir + "/freshet.json"}, dir + "/views.log");
  if (views < 0) {
    std::cerr << "cannot start " << o.freshet << "\n";
    return 1;
  }
  auto cleanup = [&] {
    kill(views, SIGTERM);
    waitpid(views, nullptr, 0);
    std::filesystem::remove_all(dir);
  };
  HttpClient http("127.0.0.1", static_cast<uint16_t>(port), std::chrono::seconds(2));
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    auto r = http.Get("/healthz");
    ready = r.ok() && r->status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ready) {
    std::cerr << "view process not ready; log in " << dir << "/views.log\n";
    cleanup();
    return 1;
  }

  // Two client threads, as many as the machine has cores: clients would
  // normally be elsewhere, and one thread made the clients the bottleneck.
  constexpr int kClientThreads = 2;
  std::vector<std::unique_ptr<net::io_context>> iocs;
  for (int t = 0; t < kClientThreads; ++t) iocs.push_back(std::make_unique<net::io_context>(1));
  std::vector<std::shared_ptr<Client>> clients;
  std::string target = std::string("/views/fanout/feed") + (o.batch ? "?batch=1" : "");
  for (int i = 0; i < o.clients; ++i) {
    // Latencies are sampled from every tenth client.
    clients.push_back(std::make_shared<Client>(*iocs[i % kClientThreads], i % 10 == 0));
    clients.back()->Start(static_cast<uint16_t>(port), target);
  }
  std::vector<std::thread> io;
  for (auto& ioc : iocs)
    io.emplace_back([&ioc] {
      auto guard = net::make_work_guard(*ioc);
      ioc->run();
    });
  auto all = [&](auto pred) {
    for (auto& c : clients)
      if (!pred(*c)) return false;
    return true;
  };
  for (int i = 0; i < 600 && !all([](Client& c) { return c.snapshot_done.load() || c.failed.load(); }); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int connected = 0;
  for (auto& c : clients) connected += c->snapshot_done && !c->failed;
  std::printf("%d of %d clients connected and got their snapshot\n", connected, o.clients);

  // Offered load: `rate` changes per second, in 10 ms ticks.
  auto producer = Producer::Create(kafka);
  if (!producer.ok()) {
    std::cerr << producer.status().ToString() << "\n";
    cleanup();
    return 1;
  }
  int64_t produced = 0;
  auto offer = [&](int seconds) {
    auto begin = std::chrono::steady_clock::now();
    int64_t first = produced;
    for (int tick = 0; tick < seconds * 100; ++tick) {
      int64_t due = first + static_cast<int64_t>(o.rate) * (tick + 1) / 100;
      for (; produced < due; ++produced) {
        std::string id = "k" + std::to_string(produced % o.keys);
        Event e{"Tick", "", NowMillis(), {{"id", id}, {"n", produced}}};
        (void)(*producer)->Produce({topic, PartitionForKey(id, 4), id, EncodeEventValue(e), {}});
      }
      std::this_thread::sleep_until(begin + std::chrono::milliseconds(10 * (tick + 1)));
    }
    (void)(*producer)->Flush(std::chrono::seconds(30));
    return produced - first;
  };
  // Waits (bounded) until every client has `count` changes more than `base`.
  auto await_clients = [&](const std::vector<int64_t>& base, int64_t count) {
    for (int i = 0; i < 100; ++i) {
      bool caught_up = true;
      for (size_t c = 0; c < clients.size() && caught_up; ++c)
        caught_up = clients[c]->failed || clients[c]->changes.load() >= base[c] + count;
      if (caught_up) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  auto counts = [&] {
    std::vector<int64_t> v;
    for (auto& c : clients) v.push_back(c->changes.load());
    return v;
  };
  // Warm-up, not measured: the first second after start-up pays for
  // first-time work (connections to the broker, allocations, caches).
  if (o.warmup_seconds > 0) {
    auto base = counts();
    await_clients(base, offer(o.warmup_seconds));
  }
  for (auto& c : clients) c->measuring = true;
  std::vector<int64_t> before = counts();
  auto start = std::chrono::steady_clock::now();
  int64_t sent = offer(o.seconds);
  double produce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Let the last flush reach everyone (bounded), then stop measuring.
  await_clients(before, sent);
  double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& c : clients) c->measuring = false;
  for (auto& ioc : iocs) ioc->stop();
  for (auto& t : io) t.join();

  int64_t delivered = 0, least = INT64_MAX, most = 0;
  int resets = 0, behind = 0;
  std::vector<int64_t> latencies, event_latencies;
  for (size_t i = 0; i < clients.size(); ++i) {
    int64_t got = clients[i]->changes.load() - before[i];
    delivered += got;
    least = std::min(least, got);
    most = std::max(most, got);
    resets += clients[i]->resets.load();
    behind += got < sent;  // coalescing would show here as fewer changes than sent
    latencies.insert(latencies.end(), clients[i]->latencies_us.begin(), clients[i]->latencies_us.end());
    event_latencies.insert(event_latencies.end(), clients[i]->event_latencies_us.begin(),
                           clients[i]->event_latencies_us.end());
  }
  auto lat = bench::Summarize(latencies);
  auto event_lat = bench::Summarize(event_latencies);
  std::printf("offered %lld changes in %.1f s (%.0f/s) to %d clients%s; flush interval %d ms\n",
              static_cast<long long>(sent), produce_seconds, sent / produce_seconds, o.clients,
              o.batch ? " (batch=1)" : "", o.flush_ms);
  std::printf("delivered %lld change messages in %.1f s: %.0f/s\n", static_cast<long long>(delivered), window,
              delivered / window);
  std::printf("commit-to-client latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%zu samples)\n", lat.p50_ms,
              lat.p99_ms, lat.max_ms, lat.count);
  std::printf("event-to-client latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", event_lat.p50_ms,
              event_lat.p99_ms, event_lat.max_ms);
  std::printf("per client: %lld..%lld changes of %lld sent; %d clients short, %d resets\n",
              static_cast<long long>(least), static_cast<long long>(most), static_cast<long long>(sent),
              behind, resets);
  bench::AppendResult(o.json_path, {{"bench", "feed_fanout"},
                                    {"clients", o.clients},
                                    {"connected", connected},
                                    {"rate", o.rate},
                                    {"batch", o.batch},
                                    {"sent", sent},
                                    {"delivered_per_s", delivered / window},
                                    {"latency", bench::ToJson(lat)},
                                    {"event_latency", bench::ToJson(event_lat)},
                                    {"clients_short", behind},
                                    {"resets", resets}});
  cleanup();
  return 0;
}

}  // namespace
}  // namespace freshet

int main(int argc, char** argv) {
  freshet::Options o;
  CLI::App app{"WebSocket change feed fan-out benchmark (needs scripts/services start)"};
  app.add_option("--clients", o.clients, "connected clients")->capture_default_str();
  app.add_option("--rate", o.rate, "changes per second offered")->capture_default_str();
  app.add_option("--seconds", o.seconds, "length of the measured window")->capture_default_str();
  app.add_option("--keys", o.keys, "distinct keys the changes cycle over")->capture_default_str();
  app.add_option("--flush-ms", o.flush_ms, "the view's flush interval")->capture_default_str();
  app.add_option("--warmup-seconds", o.warmup_seconds, "load offered before the measured window")
      ->capture_default_str();
  app.add_option("--batch-window-ms", o.batch_window_ms, "views.feed.batch_window_ms (-1: the default)")
      ->capture_default_str();
  app.add_flag("--batch", o.batch, "clients ask for batch=1 (one message per flush)");
  app.add_option("--freshet", o.freshet, "the freshet binary")->capture_default_str();
  app.add_option("--json", o.json_path, "append the result as one JSON line to this file");
  CLI11_PARSE(app, argc, argv);
  return freshet::Run(o);
}
