#include "views/view_owners.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "core/thread_name.h"

namespace freshet {
namespace {

// Unique per process start: a restarted process must not take its earlier
// life's claims (or releases) for its own.
std::string NewInstanceId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::random_device random;
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + std::to_string(random() % 1000000);
}

std::optional<PartitionState> StateFromName(const std::string& name) {
  if (name == "loading") return PartitionState::kLoading;
  if (name == "serving") return PartitionState::kServing;
  if (name == "released") return PartitionState::kReleased;
  return std::nullopt;
}

}  // namespace

const char* PartitionStateName(PartitionState state) {
  switch (state) {
    case PartitionState::kLoading:
      return "loading";
    case PartitionState::kServing:
      return "serving";
    case PartitionState::kReleased:
      return "released";
  }
  return "?";
}

ViewOwners::ViewOwners(KafkaClientOptions kafka, std::string owners_topic, std::string group, std::string url)
    : kafka_(std::move(kafka)),
      topic_(std::move(owners_topic)),
      group_(std::move(group)),
      url_(std::move(url)),
      instance_(NewInstanceId()) {}

ViewOwners::~ViewOwners() { Stop(); }

Status ViewOwners::Start(int replication_factor) {
  FRESHET_RETURN_IF_ERROR(EnsureTopic(kafka_, topic_, 1, replication_factor, std::chrono::seconds(15),
                                      {{"cleanup.policy", "compact"}})
                              .WithContext("views.owners_topic " + topic_));
  auto producer = Producer::Create(kafka_);
  if (!producer.ok()) return producer.status();
  producer_ = std::move(producer.value());
  auto consumer = Consumer::Create(kafka_, "");
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(consumer.value());
  FRESHET_RETURN_IF_ERROR(consumer_->Assign({{topic_, 0, kOffsetBeginning}}));
  thread_ = std::thread([this] {
    SetThreadName("view-owners");
    Run();
  });
  return Status::Ok();
}

void ViewOwners::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (consumer_) (void)consumer_->Close();
  consumer_.reset();
}

Status ViewOwners::Claim(const std::string& view, int32_t partition, PartitionState state) {
  if (!producer_) return Status::Internal("view owners: not started");
  OutgoingMessage m;
  m.topic = topic_;
  m.partition = 0;
  m.key = KeyPrefix(view) + std::to_string(partition);
  m.value =
      nlohmann::json{{"url", url_}, {"instance", instance_}, {"state", PartitionStateName(state)}}.dump();
  FRESHET_RETURN_IF_ERROR(producer_->Produce(m));
  return producer_->Flush(std::chrono::seconds(5)).WithContext("views.owners_topic " + topic_);
}

std::optional<OwnerOfPartition> ViewOwners::Find(const std::string& view, int32_t partition) const {
  std::lock_guard lock(mu_);
  auto v = claims_.find(view);
  if (v == claims_.end()) return std::nullopt;
  auto p = v->second.find(partition);
  if (p == v->second.end()) return std::nullopt;
  return p->second;
}

bool ViewOwners::ServedHere(const std::string& view, int32_t partition) const {
  auto owner = Find(view, partition);
  return owner && owner->instance == instance_ && owner->state == PartitionState::kServing;
}

void ViewOwners::Run() {
  const std::string prefix = group_ + "/";
  while (!stop_) {
    KafkaMessage m;
    auto outcome = consumer_->Poll(std::chrono::milliseconds(100), &m);
    if (!outcome.ok() || *outcome != Consumer::PollOutcome::kMessage) continue;
    std::string key(m.key());
    if (key.rfind(prefix, 0) != 0) continue;  // another deployment's processes
    size_t slash = key.rfind('/');
    if (slash == std::string::npos || slash < prefix.size()) continue;
    std::string view = key.substr(prefix.size(), slash - prefix.size());
    int32_t partition = std::atoi(key.c_str() + slash + 1);
    auto claim = nlohmann::json::parse(m.value(), nullptr, false);
    if (claim.is_discarded() || !claim.is_object()) continue;
    auto state = StateFromName(claim.value("state", ""));
    if (!state) continue;
    OwnerOfPartition owner{claim.value("url", ""), claim.value("instance", ""), *state};
    spdlog::debug("view owners: {} partition {} -> {} {} ({})", view, partition, owner.instance,
                  PartitionStateName(owner.state), owner.url);
    std::lock_guard lock(mu_);
    auto& partitions = claims_[view];
    if (owner.state == PartitionState::kReleased) {
      // Only the claimant gives a partition back: a late release of the old
      // owner must not erase its successor's claim.
      auto it = partitions.find(partition);
      if (it != partitions.end() && it->second.instance == owner.instance) partitions.erase(it);
      continue;
    }
    partitions[partition] = std::move(owner);
  }
}

}  // namespace freshet
