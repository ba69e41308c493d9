// demo-load: a stream of realistic inventory commands against a writer.
// Stores get initial stock, then sales (some refused for insufficient
// stock), reservations, restocking and cycle counts arrive from several
// concurrent clients.
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/http_client.h"

namespace freshet {
namespace {

struct Tally {
  std::atomic<int64_t> accepted{0}, refused{0}, failed{0};
  std::mutex mu;
  std::string sample_refusal, sample_failure;
};

std::string StoreName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "store-%02d", i + 1);
  return buf;
}
std::string SkuName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "SKU-%04d", i + 1);
  return buf;
}

nlohmann::json RandomCommand(std::mt19937& rng, const DemoLoadOptions& o) {
  std::uniform_int_distribution<int> store(0, o.stores - 1), sku(0, o.skus - 1), pick(0, 99);
  nlohmann::json c = {{"store", StoreName(store(rng))}, {"sku", SkuName(sku(rng))}};
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

void Send(HttpClient& client, const nlohmann::json& command, Tally& tally) {
  auto res = client.Post("/commands", command.dump());
  if (!res.ok()) {
    tally.failed++;
    std::lock_guard lock(tally.mu);
    if (tally.sample_failure.empty()) tally.sample_failure = res.status().message();
    return;
  }
  if (res->status == 200) {
    tally.accepted++;
  } else if (res->status == 409) {
    tally.refused++;
    std::lock_guard lock(tally.mu);
    if (tally.sample_refusal.empty()) tally.sample_refusal = res->body;
  } else {
    tally.failed++;
    std::lock_guard lock(tally.mu);
    if (tally.sample_failure.empty()) tally.sample_failure = std::to_string(res->status) + " " + res->body;
  }
}

}  // namespace

bool SplitUrl(const std::string& text, std::string* host, uint16_t* port) {
  std::string url = text;
  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto colon = url.rfind(':');
  if (colon == std::string::npos) return false;
  *host = url.substr(0, colon);
  *port = static_cast<uint16_t>(std::atoi(url.substr(colon + 1).c_str()));
  return *port != 0;
}

// Waits until the view process has stored, for every partition, the offset
// after the writer's last event: every accepted command is then visible.
int WaitForViews(HttpClient& writer, const std::string& views_url) {
  std::string host;
  uint16_t port = 0;
  if (!SplitUrl(views_url, &host, &port)) {
    std::cerr << "freshet demo-load: --wait-views: expected http://host:port, got " << views_url << "\n";
    return 2;
  }
  auto ready = writer.Get("/readyz");
  if (!ready.ok() || ready->status != 200) {
    std::cerr << "freshet demo-load: writer not ready: " << (ready.ok() ? ready->body : ready.status().message()) << "\n";
    return 1;
  }
  std::map<std::string, int64_t> wanted;
  // Named: a range-for over a member of a temporary would dangle.
  nlohmann::json readiness = nlohmann::json::parse(ready->body);
  for (const auto& p : readiness["partitions"])
    if (p["offset"].get<int64_t>() >= 0) wanted[std::to_string(p["partition"].get<int>())] = p["offset"].get<int64_t>() + 1;
  HttpClient views(host, port);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
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

int RunDemoLoadCommand(const DemoLoadOptions& o) {
  std::string url = o.writer_url;
  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto colon = url.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "freshet demo-load: --writer: expected http://host:port, got " << o.writer_url << "\n";
    return 2;
  }
  std::string host = url.substr(0, colon);
  int port = std::atoi(url.substr(colon + 1).c_str());

  auto started = std::chrono::steady_clock::now();
  Tally tally;
  // Initial stock: every SKU of every store, sent as batches.
  {
    HttpClient client(host, static_cast<uint16_t>(port));
    std::mt19937 rng(o.seed);
    for (int s = 0; s < o.stores; ++s) {
      nlohmann::json batch = nlohmann::json::array();
      for (int k = 0; k < o.skus; ++k)
        batch.push_back({{"type", "receive"}, {"store", StoreName(s)}, {"sku", SkuName(k)},
                         {"qty", std::uniform_int_distribution<int>(5, 50)(rng)}});
      auto res = client.Post("/commands", batch.dump());
      if (!res.ok() || res->status != 200) {
        std::cerr << "freshet demo-load: initial stock for " << StoreName(s) << " failed: "
                  << (res.ok() ? std::to_string(res->status) + " " + res->body : res.status().message()) << "\n";
        return 1;
      }
      nlohmann::json answer = nlohmann::json::parse(res->body);
      for (const auto& r : answer["results"]) {
        if (r["status"] == 200) tally.accepted++;
        else tally.failed++;
      }
    }
    std::cout << "demo-load: initial stock for " << o.stores << " stores x " << o.skus << " SKUs sent\n";
  }

  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(host, static_cast<uint16_t>(port));
      std::mt19937 rng(o.seed + 1 + c);
      while (next.fetch_add(1) < o.commands) Send(client, RandomCommand(rng, o), tally);
    });
  }
  std::thread progress([&] {
    while (next.load() < o.commands) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::cout << "demo-load: " << std::min(next.load(), o.commands) << "/" << o.commands << " commands sent\n";
    }
  });
  for (auto& t : clients) t.join();
  progress.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "demo-load: " << tally.accepted << " accepted, " << tally.refused << " refused, " << tally.failed
            << " failed in " << seconds << " s\n";
  if (!tally.sample_refusal.empty()) std::cout << "demo-load: a refusal looks like: " << tally.sample_refusal;
  if (!tally.sample_failure.empty()) std::cout << "demo-load: a failure: " << tally.sample_failure << "\n";
  if (tally.failed > 0) return 1;
  if (!o.wait_views_url.empty()) {
    HttpClient writer(host, static_cast<uint16_t>(port));
    return WaitForViews(writer, o.wait_views_url);
  }
  return 0;
}

}  // namespace freshet
