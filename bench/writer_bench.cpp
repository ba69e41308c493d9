// Writer throughput and latency on the local broker: commands through the
// in-process API and over HTTP (keep-alive, N concurrent clients), with
// transactions and acks=all, one transactional producer per partition.
//
//   build/bench/writer_bench --seconds 10 --partitions 8
//
// Prints one line per mode and appends JSON lines to --json.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "bench/bench_util.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "core/thread_name.h"
#include "writer/inventory.h"
#include "writer/writer.h"

using namespace freshet;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string brokers = bench::DefaultBrokers();
  int partitions = 8;
  double seconds = 10;
  int inflight = 16384;
  int submitters = 2;
  int http_clients = 64;
  // Threads that drive the HTTP clients' connections (asynchronously), as
  // pgbench's -j 2 drives bench/postgres_bench's clients.
  int client_threads = 2;
  int http_threads = Config().writer.io_threads;  // the writer's HTTP server threads (writer.io_threads)
  int pipeline = 1;              // requests each HTTP client sends before reading the answers
  int commands_per_request = 1;  // > 1: each request is a JSON array (a batch)
  int stores = 1000;
  int linger_ms = Config().writer.linger_ms;
  int max_batch = 2048;
  std::string mode = "both";
  // HTTP: "receive" (always accepted) or "sell" of one unit, after every
  // (store, sku) is stocked: the guarded decrement bench/run compares with
  // the same transaction in Postgres.
  std::string command = "receive";
  std::vector<std::string> kafka_props;
  std::string json_path;
  bool print_metrics = false;
};

Command MakeCommand(std::mt19937& rng, int stores) {
  Command c;
  c.type = "receive";
  c.partition_key = "store-" + std::to_string(rng() % stores);
  c.fields = InventoryCommand{.sku = "sku-" + std::to_string(rng() % 100), .qty = 1};
  return c;
}

// The writer's transaction counters, read from its Prometheus metrics, so a
// run can say how many transactions it took and how long they were.
struct TxnTotals {
  double transactions = 0, events = 0, commit_seconds = 0;
  double within_20ms = 0;  // commits that took at most 20 ms
  // freshet_writer_phase_seconds: sum and count per phase.
  std::vector<std::pair<double, double>> phases;
};

double MetricValue(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::strtod(text.c_str() + at + name.size() + 2, nullptr);
}

TxnTotals ReadTxnTotals(Writer& writer) {
  std::string text = "\n" + writer.metrics().RenderPrometheus();
  TxnTotals t{MetricValue(text, "freshet_writer_commit_seconds_count"),
              MetricValue(text, "freshet_writer_batch_events_sum"),
              MetricValue(text, "freshet_writer_commit_seconds_sum"),
              MetricValue(text, "freshet_writer_commit_seconds_bucket{le=\"0.02\"}"),
              {}};
  for (int i = 0; i < static_cast<int>(WriterPhase::kCount); ++i) {
    std::string labels = std::string("{phase=\"") + WriterPhaseName(static_cast<WriterPhase>(i)) + "\"}";
    t.phases.emplace_back(MetricValue(text, "freshet_writer_phase_seconds_sum" + labels),
                          MetricValue(text, "freshet_writer_phase_seconds_count" + labels));
  }
  return t;
}

void PrintTxnDelta(const TxnTotals& before, const TxnTotals& after, double seconds) {
  double txns = after.transactions - before.transactions;
  if (txns <= 0) return;
  double slow = txns - (after.within_20ms - before.within_20ms);
  std::printf(
      "                    %9.0f transactions/s, %.1f events each, commit %.2f ms mean (begin to commit), "
      "%.2f%% over 20 ms\n",
      txns / seconds, (after.events - before.events) / txns,
      1000 * (after.commit_seconds - before.commit_seconds) / txns, 100 * slow / txns);
  // Mean time per phase (freshet_writer_phase_seconds), each over its own
  // count: parse per request, queue per command, the rest per batch.
  std::string line = "                    phases, mean ms:";
  for (size_t i = 0; i < after.phases.size(); ++i) {
    double count = after.phases[i].second - before.phases[i].second;
    if (count <= 0) continue;
    char cell[64];
    std::snprintf(cell, sizeof(cell), " %s %.3f", WriterPhaseName(static_cast<WriterPhase>(i)),
                  1000 * (after.phases[i].first - before.phases[i].first) / count);
    line += cell;
  }
  std::printf("%s\n", line.c_str());
}

// Lets the load run for `seconds`, then stops it: the rate counts what was
// done inside the window; latencies include the commands that drained after.
std::pair<double, bench::LatencySummary> MeasureWindow(double seconds, SteadyClock::time_point started,
                                                       std::atomic<uint64_t>& done, std::atomic<bool>& stop,
                                                       std::vector<std::thread>& threads,
                                                       std::vector<std::vector<int64_t>>& latencies) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  uint64_t done_at_end = done.load();
  double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<int64_t> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return {done_at_end / elapsed, bench::Summarize(std::move(all))};
}

// Keeps `inflight` commands outstanding from each of `submitters` threads.
nlohmann::json RunInProcess(Writer& writer, const Options& o, bool print = true) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, failed{0};
  std::vector<std::vector<int64_t>> latencies(o.submitters);
  std::vector<std::thread> threads;
  auto started = SteadyClock::now();
  for (int t = 0; t < o.submitters; ++t) {
    threads.emplace_back([&, t] {
      SetThreadName("bench-submit");
      std::mt19937 rng(t + 1);
      std::mutex mu;
      std::condition_variable cv;
      int outstanding = 0;
      int budget = o.inflight / o.submitters;
      // The thread sleeps until a sixteenth of its budget has been answered
      // and then refills it: a wake-up per answer would cost the machine
      // more than the writer's decision does.
      int refill_below = budget - std::max(1, budget / 16);
      int to_send = 0;
      std::vector<int64_t> mine;
      while (!stop) {
        if (to_send == 0) {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return outstanding <= refill_below || stop; });
          if (stop) break;
          to_send = budget - outstanding;
          outstanding = budget;
        }
        --to_send;
        auto sent = SteadyClock::now();
        writer.Submit(MakeCommand(rng, o.stores), [&, sent](Result<CommandAck> r) {
          auto us = std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - sent).count();
          std::lock_guard lock(mu);
          if (r.ok()) {
            mine.push_back(us);
            ++done;
          } else {
            ++failed;
          }
          if (--outstanding == refill_below || outstanding == 0) cv.notify_one();
        });
      }
      std::unique_lock lock(mu);
      outstanding -= to_send;  // counted when the refill began, never sent
      cv.wait(lock, [&] { return outstanding == 0; });
      latencies[t] = std::move(mine);
    });
  }
  auto [rate, lat] = MeasureWindow(o.seconds, started, done, stop, threads, latencies);
  if (print)
    std::printf(
        "writer in-process : %9.0f commands/s  p50 %6.2f ms  p99 %7.2f ms  (%d in flight, %d partitions, "
        "%llu failed)\n",
        rate, lat.p50_ms, lat.p99_ms, o.inflight, o.partitions,
        static_cast<unsigned long long>(failed.load()));
  return {{"stage", "writer_in_process"}, {"commands_per_s", rate},     {"latency", bench::ToJson(lat)},
          {"inflight", o.inflight},       {"partitions", o.partitions}, {"failed", failed.load()}};
}

// One keep-alive HTTP client on its thread's io_context: writes `pipeline`
// requests back to back, reads their answers in order, records each
// accepted command's latency, and again, until `stop`.
class HttpLoadClient : public std::enable_shared_from_this<HttpLoadClient> {
 public:
  HttpLoadClient(boost::asio::io_context& ioc, const Options& o, unsigned seed, const std::atomic<bool>& stop,
                 std::atomic<uint64_t>& done, std::atomic<uint64_t>& failed, std::vector<int64_t>& latencies)
      : o_(o), stream_(ioc), rng_(seed), stop_(stop), done_(done), failed_(failed), latencies_(latencies) {}

  void Start(uint16_t port) {
    stream_.async_connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port),
                          [self = shared_from_this()](boost::beast::error_code ec) {
                            if (ec) {
                              ++self->failed_;
                              return;
                            }
                            self->Send();
                          });
  }

 private:
  void Send() {
    if (stop_) return;
    wire_.clear();
    for (int i = 0; i < o_.pipeline; ++i) {
      nlohmann::json commands = nlohmann::json::array();
      for (int c = 0; c < o_.commands_per_request; ++c)
        commands.push_back({{"type", o_.command},
                            {"store", "store-" + std::to_string(rng_() % o_.stores)},
                            {"sku", "sku-" + std::to_string(rng_() % 100)},
                            {"qty", 1}});
      std::string body = o_.commands_per_request == 1 ? commands[0].dump() : commands.dump();
      wire_ +=
          "POST /commands HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    sent_ = SteadyClock::now();
    boost::asio::async_write(stream_.socket(), boost::asio::buffer(wire_),
                             [self = shared_from_this()](boost::beast::error_code ec, size_t) {
                               if (ec) return;
                               self->answers_left_ = self->o_.pipeline;
                               self->Read();
                             });
  }

  void Read() {
    response_ = {};
    boost::beast::http::async_read(stream_, buffer_, response_,
                                   [self = shared_from_this()](boost::beast::error_code ec, size_t) {
                                     if (ec) return;
                                     self->Count();
                                     if (--self->answers_left_ > 0)
                                       self->Read();
                                     else
                                       self->Send();
                                   });
  }

  // A batch answers 200 with a status per command; its commands share one
  // latency. Only commands answered 200 count.
  void Count() {
    uint64_t accepted = 1;
    const std::string& body = response_.body();
    if (o_.commands_per_request > 1) {
      accepted = 0;
      for (size_t at = body.find("\"status\":200"); at != std::string::npos;
           at = body.find("\"status\":200", at + 1))
        ++accepted;
      failed_ += static_cast<uint64_t>(o_.commands_per_request) - accepted;
    }
    if (response_.result_int() == 200 && accepted > 0) {
      latencies_.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - sent_).count());
      done_ += accepted;
    } else {
      ++failed_;
    }
  }

  const Options& o_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  boost::beast::http::response<boost::beast::http::string_body> response_;
  std::mt19937 rng_;
  std::string wire_;
  SteadyClock::time_point sent_;
  int answers_left_ = 0;
  const std::atomic<bool>& stop_;
  std::atomic<uint64_t>& done_;
  std::atomic<uint64_t>& failed_;
  std::vector<int64_t>& latencies_;  // its thread's
};

nlohmann::json RunHttp(Writer& writer, const Options& o) {
  HttpServer::Options http;
  http.listen = "127.0.0.1:0";
  http.threads = o.http_threads;
  auto server = HttpServer::Start(
      http, [&](HttpRequest&& req, HttpReply reply) { writer.HandleHttp(std::move(req), reply); });
  if (!server.ok()) {
    std::cerr << server.status().ToString() << "\n";
    return nullptr;
  }
  uint16_t port = (*server)->port();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, failed{0};
  // A thread per client cost 16% of the machine at 64 clients (bench/README.md).
  int client_threads = std::clamp(o.client_threads, 1, o.http_clients);
  std::vector<std::vector<int64_t>> latencies(client_threads);
  std::vector<std::thread> threads;
  auto started = SteadyClock::now();
  for (int t = 0; t < client_threads; ++t) {
    threads.emplace_back([&, t] {
      SetThreadName("bench-client");
      boost::asio::io_context ioc;
      for (int c = t; c < o.http_clients; c += client_threads)
        std::make_shared<HttpLoadClient>(ioc, o, 100 + c, stop, done, failed, latencies[t])->Start(port);
      ioc.run();
    });
  }
  auto [rate, lat] = MeasureWindow(o.seconds, started, done, stop, threads, latencies);
  std::printf(
      "writer over HTTP  : %9.0f commands/s  p50 %6.2f ms  p99 %7.2f ms  (%d keep-alive clients on %d "
      "threads x %d pipelined x %d commands per request, %llu failed)\n",
      rate, lat.p50_ms, lat.p99_ms, o.http_clients, client_threads, o.pipeline, o.commands_per_request,
      static_cast<unsigned long long>(failed.load()));
  (*server)->Stop();
  return {{"stage", "writer_http"},     {"command", o.command},
          {"commands_per_s", rate},     {"latency", bench::ToJson(lat)},
          {"clients", o.http_clients},  {"client_threads", client_threads},
          {"pipeline", o.pipeline},     {"commands_per_request", o.commands_per_request},
          {"partitions", o.partitions}, {"failed", failed.load()}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"freshet writer benchmark (needs the local Kafka: scripts/services start)"};
  app.add_option("--brokers", o.brokers)->capture_default_str();
  app.add_option("--partitions", o.partitions)->capture_default_str();
  app.add_option("--seconds", o.seconds, "Measured time per mode")->capture_default_str();
  app.add_option("--inflight", o.inflight, "In-process: commands outstanding")->capture_default_str();
  app.add_option("--submitters", o.submitters, "In-process: submitting threads")->capture_default_str();
  app.add_option("--http-clients", o.http_clients, "HTTP: concurrent keep-alive clients")
      ->capture_default_str();
  app.add_option("--http-threads", o.http_threads, "HTTP: the writer's server threads (writer.io_threads)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--client-threads", o.client_threads, "HTTP: threads driving the clients (as pgbench's -j)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--pipeline", o.pipeline, "HTTP: requests in flight per client (HTTP/1.1 pipelining)")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  app.add_option("--stores", o.stores, "Distinct partition keys")->capture_default_str();
  app.add_option("--linger-ms", o.linger_ms)->capture_default_str();
  app.add_option("--max-batch", o.max_batch)->capture_default_str();
  app.add_option("--commands-per-request", o.commands_per_request,
                 "HTTP: commands in each POST /commands (more than 1: a JSON array, one batch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--mode", o.mode, "inprocess, http or both")
      ->check(CLI::IsMember({"inprocess", "http", "both"}));
  app.add_option("--command", o.command, "HTTP: receive, or sell (each (store, sku) is stocked first)")
      ->check(CLI::IsMember({"receive", "sell"}))
      ->capture_default_str();
  app.add_option("--kafka-prop", o.kafka_props, "Extra librdkafka property k=v (repeatable)");
  app.add_option("--json", o.json_path, "Append results as JSON lines to this file");
  app.add_flag("--print-metrics", o.print_metrics,
               "Print the writer's /metrics at the end (batch sizes, commit times)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  Config config;
  config.kafka.brokers = o.brokers;
  config.kafka.topic =
      "bench-writer-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  config.kafka.partitions = o.partitions;
  config.writer.linger_ms = o.linger_ms;
  config.writer.max_batch = o.max_batch;
  config.writer.owners_topic = "bench-writer-owners";
  config.writer.session_timeout_ms = 10000;
  for (const auto& kv : o.kafka_props) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) {
      std::cerr << "--kafka-prop: expected k=v, got " << kv << "\n";
      return 2;
    }
    config.kafka.client_properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  bench::TopicsToDelete throwaway(o.brokers);
  throwaway.Add(config.kafka.topic);
  auto writer = Writer::Start(config, MakeInventoryDomain());
  if (!writer.ok()) {
    std::cerr << writer.status().ToString() << "\n";
    return 1;
  }
  auto ready_by = SteadyClock::now() + std::chrono::seconds(60);
  while (!(*writer)->owns_all() && SteadyClock::now() < ready_by)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!(*writer)->owns_all()) {
    std::cerr << "writer did not take every partition within 60 s\n";
    return 1;
  }
  // Warm-up: the first transactions of each producer are slower.
  {
    Options warm = o;
    warm.seconds = 1;
    RunInProcess(**writer, warm, /*print=*/false);
  }
  if (o.command == "sell") {
    // Stock every (store, sku) once, so that no sell is refused.
    std::atomic<int> pending{o.stores * 100};
    for (int s = 0; s < o.stores; ++s) {
      for (int k = 0; k < 100; ++k) {
        Command c;
        c.type = "receive";
        c.partition_key = "store-" + std::to_string(s);
        c.fields = InventoryCommand{.sku = "sku-" + std::to_string(k), .qty = 100000000};
        (*writer)->Submit(std::move(c), [&](Result<CommandAck>) { --pending; });
      }
    }
    while (pending.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (o.mode != "http") {
    TxnTotals before = ReadTxnTotals(**writer);
    bench::AppendResult(o.json_path, RunInProcess(**writer, o));
    PrintTxnDelta(before, ReadTxnTotals(**writer), o.seconds);
  }
  if (o.mode != "inprocess") {
    TxnTotals before = ReadTxnTotals(**writer);
    bench::AppendResult(o.json_path, RunHttp(**writer, o));
    PrintTxnDelta(before, ReadTxnTotals(**writer), o.seconds);
  }
  if (o.print_metrics) std::cout << (*writer)->metrics().RenderPrometheus();
  (*writer)->Stop();
  return 0;
}
