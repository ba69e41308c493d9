#include "views/scale_out_reads.h"

#include <spdlog/spdlog.h>

#include "core/http_client.h"
#include "core/thread_name.h"
#include "views/view_store.h"

namespace freshet {
namespace {

HttpResponse Unavailable(const std::string& reason) {
  HttpResponse r = ErrorResponse(503, reason);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::string PartitionList(const std::vector<int32_t>& partitions) {
  std::string out;
  for (int32_t p : partitions) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

Result<ShareAnswer> ParseShareAnswer(const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object() || !json.contains("shares") || !json["shares"].is_array())
    return Status::Internal("a view process answered a partition read without shares");
  ShareAnswer out;
  out.table = json.value("table", "");
  for (const auto& s : json["shares"])
    out.shares.push_back(
        RowShare{s.value("key", ""), s.value("partition", -1), s.value("value", nlohmann::json())});
  if (json.contains("next_offsets") && json["next_offsets"].is_object())
    for (const auto& [p, next] : json["next_offsets"].items())
      out.next_offsets[std::stoi(p)] = next.get<int64_t>();
  return out;
}

}  // namespace

std::string RowsQuery::ForwardTarget(const std::string& view, const std::vector<int32_t>& partitions) const {
  std::string target = "/views/" + PercentEncode(view) + "/rows?";
  target += key.empty() ? "prefix=" + PercentEncode(prefix) : "key=" + PercentEncode(key);
  target += "&limit=" + std::to_string(limit) + "&partitions=" + PartitionList(partitions);
  for (int32_t p : partitions)
    if (p == wait_partition)
      target += "&min_offset=" + std::to_string(wait_partition) + ":" + std::to_string(wait_offset);
  return target;
}

nlohmann::json ShareAnswerJson(const ShareAnswer& answer) {
  nlohmann::json shares = nlohmann::json::array();
  for (const RowShare& s : answer.shares)
    shares.push_back({{"key", s.key}, {"partition", s.partition}, {"value", s.value}});
  nlohmann::json offsets = nlohmann::json::object();
  for (const auto& [p, next] : answer.next_offsets) offsets[std::to_string(p)] = next;
  return {{"table", answer.table}, {"shares", shares}, {"next_offsets", offsets}};
}

ScaleOutReads::ScaleOutReads(const ViewOwners& owners, int threads) : owners_(owners) {
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] {
      SetThreadName("scaled-reads");
      Run();
    });
}

ScaleOutReads::~ScaleOutReads() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ScaleOutReads::Run() {
  Peers peers;  // this thread's connections
  for (;;) {
    std::function<void(Peers&)> task;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to answer
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task(peers);
  }
}

// One client read in progress: one task per owner, the last to finish
// merges and replies. No task waits for another, so the pool cannot
// deadlock however many reads are in flight.
struct ScaleOutReads::PendingRead {
  std::string view;
  TableSpec table;
  RowsQuery query;
  LocalRead local;
  HttpReply reply;
  std::map<std::string, std::vector<int32_t>> by_owner;
  std::mutex mu;
  size_t outstanding = 0;
  std::vector<RowShare> shares;
  std::map<int32_t, int64_t> next_offsets;
  std::string table_name;
  std::optional<HttpResponse> failure;  // the first failure wins
};

void ScaleOutReads::Read(const std::string& view, const TableSpec& table, int partition_count,
                         RowsQuery query, LocalRead local, HttpReply reply) {
  auto read = std::make_shared<PendingRead>();
  // Who serves what, as the owners topic says now.
  for (int32_t p = 0; p < partition_count; ++p) {
    auto owner = owners_.Find(view, p);
    if (!owner || owner->state != PartitionState::kServing)
      return reply(Unavailable(
          "view " + view + ": partition " + std::to_string(p) +
          (owner ? " is catching up at its new owner " + owner->url : " is moving to another view process") +
          "; retry"));
    read->by_owner[owner->url].push_back(p);
  }
  read->view = view;
  read->table = table;
  read->query = std::move(query);
  read->local = std::move(local);
  read->reply = std::move(reply);
  read->outstanding = read->by_owner.size();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return read->reply(Unavailable("the view process is shutting down"));
    if (queue_.size() + read->outstanding > kMaxQueued)
      return read->reply(Unavailable("too many reads waiting for other view processes"));
    for (const auto& [url, partitions] : read->by_owner)
      queue_.push_back([this, read, url = url](Peers& peers) { AskOwner(read, url, peers); });
  }
  wake_.notify_all();
}

void ScaleOutReads::AskOwner(const std::shared_ptr<PendingRead>& read, const std::string& url, Peers& peers) {
  const std::vector<int32_t>& partitions = read->by_owner.at(url);
  const RowsQuery& query = read->query;
  const std::string& view = read->view;
  bool waits_here = std::find(partitions.begin(), partitions.end(), query.wait_partition) != partitions.end();
  Result<ShareAnswer> answer = Status::Internal("unanswered");
  std::optional<HttpResponse> failed;
  // Our own partitions are read in place, unless the reader waits for one
  // of them: the HTTP path does the waiting.
  if (url == owners_.url() && !waits_here) {
    answer = read->local(std::set<int32_t>(partitions.begin(), partitions.end()));
    if (!answer.ok())
      failed = answer.status().code() == StatusCode::kUnavailable
                   ? Unavailable(answer.status().message())
                   : ErrorResponse(HttpStatusFor(answer.status()), answer.status().message());
  } else {
    auto host_port = ParseHostPort(url.rfind("http://", 0) == 0 ? url.substr(7) : url, "advertise_url");
    if (!host_port.ok()) {
      failed = ErrorResponse(500, "view " + view + ": owner " + url + ": " + host_port.status().message());
    } else {
      auto& client = peers[url];
      // min_offset waits up to 5 s at the owner.
      if (!client)
        client = std::make_unique<HttpClient>(host_port->first, host_port->second, std::chrono::seconds(7));
      auto response = client->Get(query.ForwardTarget(view, partitions));
      if (!response.ok()) {
        client.reset();
        failed = Unavailable("view " + view + ": the view process at " + url + " (partitions " +
                             PartitionList(partitions) + ") does not answer: " + response.status().message() +
                             "; retry");
      } else if (response->status != 200) {
        HttpResponse passed = *response;
        if (passed.status == 503 && passed.Header("Retry-After").empty())
          passed.headers.emplace_back("Retry-After", "1");
        passed.content_type = "application/json";
        failed = std::move(passed);
      } else {
        answer = ParseShareAnswer(response->body);
        if (!answer.ok())
          failed = ErrorResponse(502, "view " + view + ": " + url + ": " + answer.status().message());
      }
    }
  }
  std::unique_lock lock(read->mu);
  if (failed) {
    if (!read->failure) read->failure = std::move(failed);
  } else {
    if (read->table_name.empty()) read->table_name = answer->table;
    for (auto& share : answer->shares) read->shares.push_back(std::move(share));
    for (int32_t p : partitions) {
      auto it = answer->next_offsets.find(p);
      if (it != answer->next_offsets.end()) read->next_offsets[p] = it->second;
    }
  }
  if (--read->outstanding > 0) return;
  lock.unlock();  // the last owner's answer is in: nobody else touches `read`
  if (read->failure) return read->reply(std::move(*read->failure));
  nlohmann::json rows = nlohmann::json::array();
  for (auto& [key, value] : MergeShares(read->table, std::move(read->shares), query.limit))
    rows.push_back({{"key", DecodeKey(key)}, {"value", std::move(value)}});
  nlohmann::json offsets = nlohmann::json::object();
  for (const auto& [p, next] : read->next_offsets) offsets[std::to_string(p)] = next;
  nlohmann::json served = nlohmann::json::object();
  for (const auto& [owner, owned] : read->by_owner) served[owner] = owned;
  read->reply(JsonResponse(200, {{"view", view},
                                 {"table", read->table_name},
                                 {"rows", rows},
                                 {"next_offsets", offsets},
                                 {"served_by", served}}));
}

}  // namespace freshet
