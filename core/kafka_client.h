// What the producer, consumer and admin translation units share: a client
// handle built from KafkaClientOptions, and owners of the librdkafka objects
// they pass between them. Private to core/kafka_*.cpp (it includes
// librdkafka, which nothing outside core/ does).
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/kafka.h"
#include "core/status.h"

namespace freshet {

// A unique_ptr deleter that calls librdkafka's destroy function for the type.
template <auto Destroy>
struct KafkaDestroy {
  template <typename T>
  void operator()(T* p) const {
    Destroy(p);
  }
};

using KafkaConf = std::unique_ptr<rd_kafka_conf_t, KafkaDestroy<rd_kafka_conf_destroy>>;
using KafkaPartitionList =
    std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDestroy<rd_kafka_topic_partition_list_destroy>>;
using KafkaError = std::unique_ptr<rd_kafka_error_t, KafkaDestroy<rd_kafka_error_destroy>>;
using KafkaMetadata = std::unique_ptr<const rd_kafka_metadata_t, KafkaDestroy<rd_kafka_metadata_destroy>>;

// bootstrap.servers, then `defaults`, then options.properties (which win).
Result<KafkaConf> MakeKafkaConf(const KafkaClientOptions& options,
                                const std::map<std::string, std::string>& defaults);
Result<KafkaHandle> NewKafkaHandle(rd_kafka_type_t type, KafkaConf conf);
// How many partitions `topic` has, asked through `handle` (any client).
// Asks for every topic's metadata, so that asking never auto-creates one.
// kNotFound when the topic does not exist.
Result<int> PartitionCountVia(rd_kafka_t* handle, const std::string& brokers, const std::string& topic,
                              std::chrono::milliseconds timeout);

KafkaPartitionList ToPartitionList(const std::vector<TopicPartitionOffset>& partitions);

}  // namespace freshet
