#include "core/kafka_client.h"

namespace freshet {
namespace {

Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK)
    return Status::InvalidArgument("kafka property " + name + "=" + value + ": " + err);
  return Status::Ok();
}

}  // namespace

// The patches scripts/librdkafka applied to the librdkafka built against
// (none for a system librdkafka, or where CMake does not say).
#ifndef FRESHET_RDKAFKA_PATCHES
#define FRESHET_RDKAFKA_PATCHES ""
#endif

std::string KafkaLibraryVersion() {
  std::string version = rd_kafka_version_str();
  const std::string patches = FRESHET_RDKAFKA_PATCHES;
  if (!patches.empty()) version += ", patched: " + patches;
  return version;
}

void KafkaHandleDeleter::operator()(rd_kafka_s* rk) const {
  if (rk) rd_kafka_destroy(rk);
}

void KafkaTopicDeleter::operator()(rd_kafka_topic_s* rkt) const {
  if (rkt) rd_kafka_topic_destroy(rkt);
}

Result<KafkaConf> MakeKafkaConf(const KafkaClientOptions& options,
                                const std::map<std::string, std::string>& defaults) {
  if (options.brokers.empty()) return Status::InvalidArgument("kafka.brokers: required");
  KafkaConf conf(rd_kafka_conf_new());
  FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), "bootstrap.servers", options.brokers));
  // Client telemetry to the broker (KIP-714, librdkafka 2.5 and later) is
  // off unless a property turns it on: destroying a client waits up to 1 s
  // for its telemetry to stop (rd_kafka_telemetry_await_termination), and
  // the short-lived clients on start-up paths (a view's partition count, a
  // new owner's snapshot read) made views start 1.02 s late in 15 of 224
  // sources_bench view runs.
  if (rd_kafka_version() >= 0x020500ff)
    FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), "enable.metrics.push", "false"));
  for (const auto& [k, v] : defaults) FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), k, v));
  for (const auto& [k, v] : options.properties) FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), k, v));
  return conf;
}

Result<KafkaHandle> NewKafkaHandle(rd_kafka_type_t type, KafkaConf conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof(err));
  if (!rk) return Status::InvalidArgument(std::string("kafka client: ") + err);
  (void)conf.release();  // rd_kafka_new took ownership
  return KafkaHandle(rk);
}

KafkaPartitionList ToPartitionList(const std::vector<TopicPartitionOffset>& partitions) {
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& tp : partitions)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = tp.offset;
  return list;
}

Result<int> PartitionCountVia(rd_kafka_t* handle, const std::string& brokers, const std::string& topic,
                              std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  // All topics, so that asking never auto-creates the topic.
  rd_kafka_resp_err_t err = rd_kafka_metadata(handle, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err)
    return Status::Unavailable("kafka.brokers " + brokers +
                               ": metadata request failed: " + rd_kafka_err2str(err));
  KafkaMetadata owned(md);
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && !md->topics[i].err) return md->topics[i].partition_cnt;
  }
  return Status::NotFound("topic " + topic + " does not exist");
}

}  // namespace freshet
