#include "writer/owner_directory.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace freshet {

OwnerDirectory::OwnerDirectory(KafkaClientOptions kafka, std::string owners_topic, std::string topic)
    : kafka_(std::move(kafka)), owners_topic_(std::move(owners_topic)), topic_(std::move(topic)) {}

OwnerDirectory::~OwnerDirectory() { Stop(); }

Status OwnerDirectory::Start() {
  auto consumer = Consumer::Create(kafka_, "");
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(consumer.value());
  FRESHET_RETURN_IF_ERROR(consumer_->Assign({{owners_topic_, 0, kOffsetBeginning}}));
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void OwnerDirectory::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (consumer_) (void)consumer_->Close();
}

std::optional<OwnerClaim> OwnerDirectory::Find(int32_t partition) const {
  std::lock_guard lock(mu_);
  auto it = claims_.find(partition);
  if (it == claims_.end()) return std::nullopt;
  return it->second;
}

void OwnerDirectory::Run() {
  const std::string prefix = topic_ + "/";
  while (!stop_) {
    KafkaMessage m;
    auto outcome = consumer_->Poll(std::chrono::milliseconds(100), &m);
    if (!outcome.ok() || *outcome != Consumer::PollOutcome::kMessage) continue;
    std::string key(m.key());
    if (key.rfind(prefix, 0) != 0) continue;  // another topic's writers
    int32_t partition = std::atoi(key.c_str() + prefix.size());
    auto claim = nlohmann::json::parse(m.value(), nullptr, false);
    if (claim.is_discarded() || !claim.is_object()) continue;
    OwnerClaim c{claim.value("url", ""), claim.value("instance", "")};
    spdlog::debug("owners: partition {} -> {} ({})", partition, c.instance, c.url);
    std::lock_guard lock(mu_);
    claims_[partition] = std::move(c);
  }
}

}  // namespace freshet
