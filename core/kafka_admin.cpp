// The admin calls of core/kafka.h: topics, their configuration, record
// deletion. Each call opens a short-lived client of its own.
#include <chrono>
#include <thread>

#include "core/kafka.h"
#include "core/kafka_client.h"

namespace freshet {
namespace {

using AdminQueue = std::unique_ptr<rd_kafka_queue_t, KafkaDestroy<rd_kafka_queue_destroy>>;
using AdminEvent = std::unique_ptr<rd_kafka_event_t, KafkaDestroy<rd_kafka_event_destroy>>;
using NewTopicRequest = std::unique_ptr<rd_kafka_NewTopic_t, KafkaDestroy<rd_kafka_NewTopic_destroy>>;
using DeleteTopicRequest =
    std::unique_ptr<rd_kafka_DeleteTopic_t, KafkaDestroy<rd_kafka_DeleteTopic_destroy>>;
using ConfigResource =
    std::unique_ptr<rd_kafka_ConfigResource_t, KafkaDestroy<rd_kafka_ConfigResource_destroy>>;
using DeleteRecordsRequest =
    std::unique_ptr<rd_kafka_DeleteRecords_t, KafkaDestroy<rd_kafka_DeleteRecords_destroy>>;

// Admin requests go through a plain producer handle: it joins no group.
Result<KafkaHandle> NewAdminHandle(const KafkaClientOptions& options) {
  auto conf = MakeKafkaConf(options, {});
  if (!conf.ok()) return conf.status();
  return NewKafkaHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
}

// Waits for the answer to an admin request sent to `queue`; `what` names the
// request in errors.
Result<AdminEvent> AwaitAdminEvent(rd_kafka_queue_t* queue, const std::string& what,
                                   const KafkaClientOptions& options, std::chrono::milliseconds timeout) {
  AdminEvent event(rd_kafka_queue_poll(queue, static_cast<int>(timeout.count())));
  if (!event) return Status::Timeout(what + ": no answer from " + options.brokers);
  if (rd_kafka_event_error(event.get()))
    return Status::Unavailable(what + ": " + rd_kafka_event_error_string(event.get()));
  return event;
}

// Sends the CreateTopics request; OK if the topic exists already.
Status CreateTopic(rd_kafka_t* rk, const KafkaClientOptions& options, const std::string& topic,
                   int partitions, int replication_factor, std::chrono::milliseconds timeout,
                   const std::map<std::string, std::string>& topic_config) {
  char err[512];
  NewTopicRequest new_topic(
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, err, sizeof(err)));
  if (!new_topic) return Status::InvalidArgument("topic " + topic + ": " + err);
  for (const auto& [name, value] : topic_config)
    rd_kafka_NewTopic_set_config(new_topic.get(), name.c_str(), value.c_str());
  rd_kafka_NewTopic_t* request = new_topic.get();
  AdminQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, &request, 1, nullptr, queue.get());
  std::string what = "creating topic " + topic;
  auto event = AwaitAdminEvent(queue.get(), what, options, timeout);
  if (!event.ok()) return event.status();
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event->get());
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      result ? rd_kafka_CreateTopics_result_topics(result, &count) : nullptr;
  if (count == 1 && rd_kafka_topic_result_error(results[0]) &&
      rd_kafka_topic_result_error(results[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    return Status::Internal(what + ": " + rd_kafka_topic_result_error_string(results[0]));
  return Status::Ok();
}

// "host:port" of every broker in the cluster, or just options.brokers when
// the metadata does not come.
std::vector<std::string> BrokerAddresses(rd_kafka_t* rk, const KafkaClientOptions& options,
                                         std::chrono::milliseconds timeout) {
  std::vector<std::string> brokers;
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, nullptr, &md, static_cast<int>(timeout.count())) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    KafkaMetadata owned(md);
    for (int i = 0; i < md->broker_cnt; ++i)
      brokers.push_back(std::string(md->brokers[i].host) + ":" + std::to_string(md->brokers[i].port));
  }
  if (brokers.empty()) brokers.push_back(options.brokers);
  return brokers;
}

// Each broker learns of a new topic from the cluster's metadata log on its
// own schedule, and a client's metadata or config request goes to whichever
// broker it picks: on three brokers, the writer's next request right after
// creating its topic met a broker that did not know it yet ("does not
// exist") and the writer refused to start. So wait until every broker
// answers with the topic. A fresh client asks its only bootstrap server
// first.
Status AwaitTopicOnEveryBroker(rd_kafka_t* rk, const KafkaClientOptions& options, const std::string& topic,
                               std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& broker : BrokerAddresses(rk, options, timeout)) {
    KafkaClientOptions one = options;
    one.brokers = broker;
    while (!PartitionCount(one, topic, timeout).ok()) {
      if (std::chrono::steady_clock::now() >= deadline)
        return Status::Timeout("topic " + topic + " created but broker " + broker +
                               " does not show it in metadata");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<int> PartitionCount(const KafkaClientOptions& options, const std::string& topic,
                           std::chrono::milliseconds timeout) {
  auto handle = NewAdminHandle(options);
  if (!handle.ok()) return handle.status();
  return PartitionCountVia(handle->get(), options.brokers, topic, timeout);
}

Status DeleteTopics(const KafkaClientOptions& options, const std::vector<std::string>& topics,
                    std::chrono::milliseconds timeout) {
  if (topics.empty()) return Status::Ok();
  auto handle = NewAdminHandle(options);
  if (!handle.ok()) return handle.status();
  std::vector<DeleteTopicRequest> owned;
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const auto& topic : topics) {
    owned.emplace_back(rd_kafka_DeleteTopic_new(topic.c_str()));
    requests.push_back(owned.back().get());
  }
  AdminQueue queue(rd_kafka_queue_new(handle->get()));
  rd_kafka_DeleteTopics(handle->get(), requests.data(), requests.size(), nullptr, queue.get());
  auto event = AwaitAdminEvent(queue.get(), "deleting topics", options, timeout);
  if (!event.ok()) return event.status();
  size_t count = 0;
  const rd_kafka_DeleteTopics_result_t* result = rd_kafka_event_DeleteTopics_result(event->get());
  const rd_kafka_topic_result_t** results =
      result ? rd_kafka_DeleteTopics_result_topics(result, &count) : nullptr;
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return Status::Internal(std::string("deleting topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                              rd_kafka_topic_result_error_string(results[i]));
  }
  return Status::Ok();
}

Status EnsureTopic(const KafkaClientOptions& options, const std::string& topic, int partitions,
                   int replication_factor, std::chrono::milliseconds timeout,
                   const std::map<std::string, std::string>& topic_config) {
  auto existing = PartitionCount(options, topic, timeout);
  if (existing.ok()) return Status::Ok();
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();

  auto handle = NewAdminHandle(options);
  if (!handle.ok()) return handle.status();
  FRESHET_RETURN_IF_ERROR(
      CreateTopic(handle->get(), options, topic, partitions, replication_factor, timeout, topic_config));
  return AwaitTopicOnEveryBroker(handle->get(), options, topic, timeout);
}

Result<std::map<std::string, std::string>> DescribeTopicConfig(const KafkaClientOptions& options,
                                                               const std::string& topic,
                                                               std::chrono::milliseconds timeout) {
  auto handle = NewAdminHandle(options);
  if (!handle.ok()) return handle.status();
  ConfigResource resource(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()));
  rd_kafka_ConfigResource_t* request = resource.get();
  AdminQueue queue(rd_kafka_queue_new(handle->get()));
  rd_kafka_DescribeConfigs(handle->get(), &request, 1, nullptr, queue.get());
  std::string what = "describing topic " + topic;
  auto event = AwaitAdminEvent(queue.get(), what, options, timeout);
  if (!event.ok()) return event.status();
  const rd_kafka_DescribeConfigs_result_t* result = rd_kafka_event_DescribeConfigs_result(event->get());
  size_t count = 0;
  const rd_kafka_ConfigResource_t** resources =
      result ? rd_kafka_DescribeConfigs_result_resources(result, &count) : nullptr;
  if (count != 1) return Status::Internal(what + ": no answer for the topic");
  if (rd_kafka_ConfigResource_error(resources[0])) {
    if (rd_kafka_ConfigResource_error(resources[0]) == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return Status::NotFound("topic " + topic + " does not exist");
    return Status::Unavailable(what + ": " + rd_kafka_ConfigResource_error_string(resources[0]));
  }
  std::map<std::string, std::string> out;
  size_t entries = 0;
  const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(resources[0], &entries);
  for (size_t i = 0; i < entries; ++i) {
    const char* value = rd_kafka_ConfigEntry_value(configs[i]);
    out[rd_kafka_ConfigEntry_name(configs[i])] = value ? value : "";
  }
  return out;
}

Status DeleteRecordsBefore(const KafkaClientOptions& options, const std::string& topic, int32_t partition,
                           int64_t before_offset, std::chrono::milliseconds timeout) {
  auto handle = NewAdminHandle(options);
  if (!handle.ok()) return handle.status();
  auto offsets = ToPartitionList({{topic, partition, before_offset}});
  DeleteRecordsRequest request(rd_kafka_DeleteRecords_new(offsets.get()));
  rd_kafka_DeleteRecords_t* requests = request.get();
  AdminQueue queue(rd_kafka_queue_new(handle->get()));
  rd_kafka_DeleteRecords(handle->get(), &requests, 1, nullptr, queue.get());
  std::string what = "deleting records of " + topic + " partition " + std::to_string(partition);
  auto event = AwaitAdminEvent(queue.get(), what, options, timeout);
  if (!event.ok()) return event.status();
  const rd_kafka_DeleteRecords_result_t* result = rd_kafka_event_DeleteRecords_result(event->get());
  const rd_kafka_topic_partition_list_t* done =
      result ? rd_kafka_DeleteRecords_result_offsets(result) : nullptr;
  if (!done || done->cnt != 1) return Status::Internal(what + ": no answer for the partition");
  if (done->elems[0].err) return Status::Unavailable(what + ": " + rd_kafka_err2str(done->elems[0].err));
  return Status::Ok();
}

std::string RetentionProblem(const std::map<std::string, std::string>& config) {
  auto value = [&](const char* name) {
    auto it = config.find(name);
    return it == config.end() ? std::string() : it->second;
  };
  std::string problems;
  auto add = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  std::string ms = value("retention.ms"), bytes = value("retention.bytes"), policy = value("cleanup.policy");
  if (!ms.empty() && ms != "-1") add("retention.ms=" + ms + " deletes records older than that");
  if (!bytes.empty() && bytes != "-1")
    add("retention.bytes=" + bytes + " deletes the oldest records beyond that size");
  if (policy.find("compact") != std::string::npos)
    add("cleanup.policy=" + policy + " removes superseded records");
  return problems;
}

}  // namespace freshet
