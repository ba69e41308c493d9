// demo-load: a stream of realistic inventory commands against a writer.
// Stores get initial stock, then sales (some refused for insufficient
// stock), reservations, restocking and cycle counts arrive from several
// concurrent clients.
//
// Built for failover demos: every command carries an idempotency key
// ("id"), and a command that meets a restarting writer (connection refused,
// 503 during a takeover, 502/504) is sent again with the same key, with a
// bounded backoff, for up to --retry-for seconds; 307 redirects to the
// partition's owner are followed. A retry whose first attempt did commit is
// answered "duplicate" and publishes nothing, so the topic holds each
// accepted command once. The summary says how many retries it took.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/envelope.h"
#include "core/http_client.h"

namespace freshet {
namespace {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string Url() const { return "http://" + host + ":" + std::to_string(port); }
  bool operator==(const Endpoint&) const = default;
};

// "http://host:port[/path...]" -> host and port.
std::optional<Endpoint> ParseUrl(const std::string& text) {
  std::string url = text;
  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  if (auto slash = url.find('/'); slash != std::string::npos) url = url.substr(0, slash);
  auto colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  Endpoint e{url.substr(0, colon), static_cast<uint16_t>(std::atoi(url.substr(colon + 1).c_str()))};
  if (e.port == 0) return std::nullopt;
  return e;
}

struct Tally {
  std::atomic<int64_t> accepted{0}, duplicates{0}, refused{0}, failed{0};
  std::atomic<int64_t> retries{0}, redirects{0};
  std::mutex mu;
  std::string sample_refusal, sample_failure, sample_retry;

  void Sample(std::string* where, const std::string& what) {
    std::lock_guard lock(mu);
    if (where->empty()) *where = what;
  }
};

struct RetryPolicy {
  std::chrono::milliseconds budget{60000};  // per command (or batch), from its first attempt
  std::chrono::milliseconds first_backoff{50};
  std::chrono::milliseconds max_backoff{1000};
};

// An answer that another attempt may change: the writer is restarting or
// handing a partition over. Anything else (2xx, 4xx, 500) is final.
bool Retryable(int status) { return status == 502 || status == 503 || status == 504; }

std::string Brief(const std::string& body) {
  std::string out = body.substr(0, 200);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// One per thread: a connection per writer instance, and the retry loop.
class Sender {
 public:
  Sender(Endpoint writer, RetryPolicy policy, Tally& tally)
      : writer_(std::move(writer)), policy_(policy), tally_(tally) {}

  // POSTs `body` to /commands until the answer is final or the budget is
  // spent; follows 307s to the owner. `partition` (-1: unknown) remembers
  // the owner a redirect named, so later commands go there directly.
  Result<HttpResponse> Post(const std::string& body, int32_t partition) {
    auto deadline = Clock::now() + policy_.budget;
    auto backoff = policy_.first_backoff;
    Endpoint at = writer_;
    if (auto it = owners_.find(partition); it != owners_.end()) at = it->second;
    int redirects_in_a_row = 0;
    for (;;) {
      auto res = ClientFor(at).Post("/commands", body);
      std::string why;
      if (!res.ok()) {
        why = res.status().message();
        // The remembered owner may be the one that went away: ask the
        // configured writer again, which redirects to the new owner.
        owners_.erase(partition);
        at = writer_;
      } else if ((res->status == 307 || res->status == 308) && redirects_in_a_row < 5) {
        if (auto to = ParseUrl(res->Header("location")); to) {
          ++redirects_in_a_row;
          tally_.redirects++;
          at = *to;
          if (partition >= 0) owners_[partition] = *to;
          continue;
        }
        why = "307 without a usable Location: " + Brief(res->body);
      } else if (Retryable(res->status)) {
        why = std::to_string(res->status) + " " + Brief(res->body);
      } else {
        return res;
      }
      redirects_in_a_row = 0;
      if (Clock::now() + backoff > deadline)
        return Status::Unavailable("gave up after " + std::to_string(policy_.budget.count() / 1000) +
                                   " s: " + why);
      tally_.retries++;
      tally_.Sample(&tally_.sample_retry, why);
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, policy_.max_backoff);
    }
  }

  // A batch item's 307 names the partition's owner in its body.
  void RememberOwner(int32_t partition, const std::string& url) {
    if (auto to = ParseUrl(url); to && partition >= 0) owners_[partition] = *to;
  }
  std::chrono::milliseconds budget() const { return policy_.budget; }

 private:
  HttpClient& ClientFor(const Endpoint& e) {
    std::string key = e.Url();
    auto& client = clients_[key];
    if (!client) client = std::make_unique<HttpClient>(e.host, e.port, std::chrono::seconds(30));
    return *client;
  }

  Endpoint writer_;
  RetryPolicy policy_;
  Tally& tally_;
  std::map<std::string, std::unique_ptr<HttpClient>> clients_;
  std::map<int32_t, Endpoint> owners_;
};

std::string StoreName(int n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "store-%02d", n);
  return buf;
}
std::string SkuName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "SKU-%04d", i + 1);
  return buf;
}

// `count` store ids spread evenly over the topic's partitions: store-01,
// then the next store-NN whose partition has the fewest stores so far.
// Consecutive ids would not do: store-01..04 all miss partition 2 of 4.
std::vector<std::string> ChooseStores(int count, int32_t partitions) {
  std::vector<std::string> out;
  if (partitions <= 0) partitions = 1;
  std::vector<int> per_partition(static_cast<size_t>(partitions), 0);
  for (int n = 1; static_cast<int>(out.size()) < count; ++n) {
    std::string name = StoreName(n);
    int32_t p = PartitionForKey(name, partitions);
    int fewest = *std::min_element(per_partition.begin(), per_partition.end());
    // Past a large search, take any id (cannot happen with murmur2, but
    // the loop must end).
    if (per_partition[static_cast<size_t>(p)] > fewest && n < 100000) continue;
    per_partition[static_cast<size_t>(p)]++;
    out.push_back(std::move(name));
  }
  return out;
}

nlohmann::json RandomCommand(std::mt19937& rng, const DemoLoadOptions& o,
                             const std::vector<std::string>& stores) {
  std::uniform_int_distribution<int> store(0, static_cast<int>(stores.size()) - 1), sku(0, o.skus - 1),
      pick(0, 99);
  nlohmann::json c = {{"store", stores[static_cast<size_t>(store(rng))]}, {"sku", SkuName(sku(rng))}};
  int p = pick(rng);
  if (p < 55) {
    c["type"] = "sell";
    c["qty"] = std::uniform_int_distribution<int>(1, 6)(rng);
  } else if (p < 70) {
    c["type"] = "receive";
    c["qty"] = std::uniform_int_distribution<int>(5, 40)(rng);
  } else if (p < 80) {
    c["type"] = "reserve";
    c["qty"] = std::uniform_int_distribution<int>(1, 3)(rng);
  } else if (p < 88) {
    c["type"] = "sell";
    c["from_reservation"] = true;
    c["qty"] = 1;
  } else if (p < 95) {
    c["type"] = "release";
    c["qty"] = 1;
  } else {
    c["type"] = "adjust";
    c["counted"] = std::uniform_int_distribution<int>(0, 30)(rng);
  }
  return c;
}

void Send(Sender& sender, const nlohmann::json& command, int32_t partition, Tally& tally) {
  auto res = sender.Post(command.dump(), partition);
  if (!res.ok()) {
    tally.failed++;
    tally.Sample(&tally.sample_failure, res.status().message());
    return;
  }
  if (res->status == 200) {
    tally.accepted++;
    if (res->body.find("\"duplicate\":true") != std::string::npos) tally.duplicates++;
  } else if (res->status == 409) {
    tally.refused++;
    tally.Sample(&tally.sample_refusal, res->body);
  } else {
    tally.failed++;
    tally.Sample(&tally.sample_failure, std::to_string(res->status) + " " + res->body);
  }
}

// A batch of commands (one store's initial stock: one partition) until every
// command has a final answer. Items answered 503/307 inside a 200 batch are
// sent again, with the same ids, to the owner named. Returns false if some
// command could not be placed within the budget.
bool SendBatch(Sender& sender, nlohmann::json batch, int32_t partition, Tally& tally, std::string* error) {
  auto deadline = Clock::now() + sender.budget();
  while (!batch.empty()) {
    auto res = sender.Post(batch.dump(), partition);
    if (!res.ok()) {
      *error = res.status().message();
      return false;
    }
    if (res->status != 200) {
      *error = std::to_string(res->status) + " " + Brief(res->body);
      return false;
    }
    nlohmann::json answer = nlohmann::json::parse(res->body, nullptr, false);
    if (answer.is_discarded() || !answer["results"].is_array() || answer["results"].size() != batch.size()) {
      *error = "unexpected answer: " + Brief(res->body);
      return false;
    }
    nlohmann::json again = nlohmann::json::array();
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& r = answer["results"][i];
      int status = r.value("status", 0);
      if (status == 200) {
        tally.accepted++;
        if (r.value("duplicate", false)) tally.duplicates++;
      } else if (status == 307 || Retryable(status)) {
        tally.Sample(&tally.sample_retry, "batch item " + r.dump().substr(0, 200));
        if (status == 307 && r.contains("owner") && r["owner"].is_string()) {
          sender.RememberOwner(partition, r["owner"].get<std::string>());
          tally.redirects++;
        }
        again.push_back(batch[i]);
      } else {
        tally.failed++;
        tally.Sample(&tally.sample_failure, r.dump());
      }
    }
    if (!again.empty()) {
      if (Clock::now() > deadline) {
        *error = std::to_string(again.size()) + " commands still unplaced after " +
                 std::to_string(sender.budget().count() / 1000) +
                 " s: " + answer["results"].dump().substr(0, 200);
        return false;
      }
      tally.retries++;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    batch = std::move(again);
  }
  return true;
}

// The writer's partition count from /readyz (answered also while not ready),
// waiting for the writer to come up within the retry budget.
Result<int32_t> WriterPartitions(const Endpoint& writer, const RetryPolicy& policy, Tally& tally) {
  HttpClient client(writer.host, writer.port, std::chrono::seconds(10));
  auto deadline = Clock::now() + policy.budget;
  auto backoff = policy.first_backoff;
  std::string why;
  for (;;) {
    auto r = client.Get("/readyz");
    if (r.ok()) {
      auto j = nlohmann::json::parse(r->body, nullptr, false);
      if (!j.is_discarded() && j.contains("partitions") && j["partitions"].is_array() &&
          !j["partitions"].empty())
        return static_cast<int32_t>(j["partitions"].size());
      why = "GET /readyz answered " + std::to_string(r->status) + " " + Brief(r->body);
    } else {
      why = r.status().message();
    }
    if (Clock::now() + backoff > deadline) return Status::Unavailable(why);
    tally.retries++;
    tally.Sample(&tally.sample_retry, why);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
}

// Waits until the view process has stored, for every partition, the offset
// after the writer's last event: every accepted command is then visible.
int WaitForViews(HttpClient& writer, const std::string& views_url) {
  auto views_at = ParseUrl(views_url);
  if (!views_at) {
    std::cerr << "freshet demo-load: --wait-views: expected http://host:port, got " << views_url << "\n";
    return 2;
  }
  Result<HttpResponse> ready = Status::Unavailable("not asked yet");
  // The writer may still be taking its partitions over after a restart.
  auto ready_deadline = Clock::now() + std::chrono::seconds(60);
  do {
    ready = writer.Get("/readyz");
    if (ready.ok() && ready->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < ready_deadline);
  if (!ready.ok() || ready->status != 200) {
    std::cerr << "freshet demo-load: writer not ready: "
              << (ready.ok() ? ready->body : ready.status().message()) << "\n";
    return 1;
  }
  std::map<std::string, int64_t> wanted;
  // Named: a range-for over a member of a temporary would dangle.
  nlohmann::json readiness = nlohmann::json::parse(ready->body);
  for (const auto& p : readiness["partitions"])
    if (p["offset"].get<int64_t>() >= 0)
      wanted[std::to_string(p["partition"].get<int>())] = p["offset"].get<int64_t>() + 1;
  HttpClient views(views_at->host, views_at->port);
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    auto status = views.Get("/views/stock_levels/status");
    if (status.ok() && status->status == 200) {
      auto stored = nlohmann::json::parse(status->body)["next_offsets"];
      bool caught_up = true;
      for (const auto& [partition, next] : wanted)
        if (!stored.contains(partition) || stored[partition].get<int64_t>() < next) caught_up = false;
      if (caught_up) {
        std::cout << "demo-load: the view has applied every accepted command\n";
        return 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::cerr << "freshet demo-load: the view did not catch up within 120 s\n";
  return 1;
}

}  // namespace

int RunDemoLoadCommand(const DemoLoadOptions& o) {
  auto writer = ParseUrl(o.writer_url);
  if (!writer) {
    std::cerr << "freshet demo-load: --writer: expected http://host:port, got " << o.writer_url << "\n";
    return 2;
  }
  RetryPolicy policy;
  policy.budget = std::chrono::milliseconds(static_cast<int64_t>(o.retry_seconds * 1000));

  auto started = Clock::now();
  Tally tally;
  auto partitions = WriterPartitions(*writer, policy, tally);
  if (!partitions.ok()) {
    std::cerr << "freshet demo-load: no answer from the writer at " << writer->Url() << " within "
              << o.retry_seconds << " s: " << partitions.status().message() << "\n";
    return 1;
  }
  const std::vector<std::string> stores = ChooseStores(o.stores, *partitions);
  {
    std::map<int32_t, int> per_partition;
    for (const auto& s : stores) per_partition[PartitionForKey(s, *partitions)]++;
    std::cout << "demo-load: " << stores.size() << " stores (";
    for (size_t i = 0; i < stores.size() && i < 8; ++i) std::cout << (i ? ", " : "") << stores[i];
    if (stores.size() > 8) std::cout << ", ...";
    std::cout << ") on " << per_partition.size() << " of " << *partitions << " partitions\n";
  }
  // Idempotency keys unique to this run: a second run must not be taken
  // for retries of the first.
  char run[48];
  std::snprintf(run, sizeof(run), "demo-%llx-%x",
                static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    std::chrono::system_clock::now().time_since_epoch())
                                                    .count()),
                static_cast<unsigned>(getpid()));
  const std::string run_id = run;

  // Initial stock: every SKU of every store, one batch per store.
  {
    Sender sender(*writer, policy, tally);
    std::mt19937 rng(o.seed);
    for (size_t s = 0; s < stores.size(); ++s) {
      nlohmann::json batch = nlohmann::json::array();
      for (int k = 0; k < o.skus; ++k)
        batch.push_back({{"type", "receive"},
                         {"store", stores[s]},
                         {"sku", SkuName(k)},
                         {"qty", std::uniform_int_distribution<int>(5, 50)(rng)},
                         {"id", run_id + "-s" + std::to_string(s) + "-" + std::to_string(k)}});
      std::string error;
      if (!SendBatch(sender, std::move(batch), PartitionForKey(stores[s], *partitions), tally, &error)) {
        std::cerr << "freshet demo-load: initial stock for " << stores[s] << " failed: " << error << "\n";
        return 1;
      }
    }
    std::cout << "demo-load: initial stock for " << stores.size() << " stores x " << o.skus << " SKUs sent\n";
  }

  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      Sender sender(*writer, policy, tally);
      std::mt19937 rng(o.seed + 1 + c);
      for (int n; (n = next.fetch_add(1)) < o.commands; done++) {
        nlohmann::json command = RandomCommand(rng, o, stores);
        command["id"] = run_id + "-" + std::to_string(n);
        Send(sender, command, PartitionForKey(command["store"].get<std::string>(), *partitions), tally);
      }
    });
  }
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    while (!finished.load()) {
      for (int i = 0; i < 10 && !finished.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (finished.load()) break;
      std::cout << "demo-load: " << std::min(done.load(), o.commands) << "/" << o.commands
                << " commands answered, " << tally.retries << " retries\n"
                << std::flush;
    }
  });
  for (auto& t : clients) t.join();
  finished = true;
  progress.join();
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << "demo-load: " << tally.accepted << " accepted, " << tally.refused << " refused, "
            << tally.failed << " failed in " << seconds << " s\n";
  if (!tally.sample_refusal.empty()) std::cout << "demo-load: a refusal looks like: " << tally.sample_refusal;
  if (!tally.sample_failure.empty()) std::cout << "demo-load: a failure: " << tally.sample_failure << "\n";
  // A retry answered "duplicate": its earlier attempt had committed, but the
  // answer was lost; the event is in the topic once.
  std::cout << "demo-load: retries: " << tally.retries << ", redirects followed: " << tally.redirects
            << ", accepted on an earlier attempt: " << tally.duplicates;
  if (!tally.sample_retry.empty()) std::cout << " (first retry after: " << tally.sample_retry << ")";
  std::cout << "\n" << std::flush;
  if (tally.failed > 0) return 1;
  if (!o.wait_views_url.empty()) {
    HttpClient writer_client(writer->host, writer->port);
    return WaitForViews(writer_client, o.wait_views_url);
  }
  return 0;
}

}  // namespace freshet
