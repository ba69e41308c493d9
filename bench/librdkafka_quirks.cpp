// Re-checks, on whichever librdkafka it is linked with, the behaviours
// freshet works around (see the comments at each workaround):
//
//  - the defaults that the writer and the views override
//    (heartbeat.interval.ms against a short session.timeout.ms,
//    queued.min.messages);
//  - assign() on a consumer without group.id (core/kafka_consumer.cpp sets
//    one for assign-only consumers);
//  - abort_transaction right after a produce, without a flush first
//    (librdkafka#4849; TransactionalProducer::Abort flushes first);
//  - how long the first record of a fresh partition takes after assign at
//    "beginning" against an absolute offset 0 (views/view_engine.cpp starts
//    at the known log start);
//  - how long a transaction's first message waits before the broker has it
//    (the partition's registration timer that
//    scripts/librdkafka-patches/register-partitions-at-once.patch removes).
//
// Plain C API on purpose: it checks librdkafka, not freshet's wrappers.
// Run by bench/librdkafka-quirks against the local broker.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
std::string g_brokers = "127.0.0.1:19092";

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Kafka = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
};
using Error = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

Kafka NewClient(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& settings) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", g_brokers.c_str(), err, sizeof err);
  // Without a delivery report callback, rd_kafka_flush() learns that the
  // messages were delivered only every 10 ms (it polls for reports that
  // never come); freshet's producers have one.
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t*, void*) {});
  for (const auto& [key, value] : settings)
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "%s=%s: %s\n", key.c_str(), value.c_str(), err);
      std::exit(2);
    }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    std::exit(2);
  }
  return Kafka(rk);
}

std::string Default(const char* key) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char value[128];
  size_t size = sizeof value;
  rd_kafka_conf_get(conf, key, value, &size);
  rd_kafka_conf_destroy(conf);
  return value;
}

void CreateTopic(rd_kafka_t* rk, const std::string& topic) {
  char err[256];
  rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, err, sizeof err);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &t, 1, nullptr, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000);
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      ev ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n) : nullptr;
  if (!ev || (n == 1 && rd_kafka_topic_result_error(results[0]))) {
    std::fprintf(stderr, "create %s: %s\n", topic.c_str(),
                 ev && n == 1 ? rd_kafka_topic_result_error_string(results[0]) : "no answer");
    std::exit(2);
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(t);
}

// Begin, produce `messages`, abort at once, `rounds` times: how many aborts
// failed, and whether one was fatal (the producer is then unusable).
void AbortRightAfterProduce(const std::string& topic, int32_t partition, int messages, int rounds) {
  Kafka p = NewClient(RD_KAFKA_PRODUCER, {{"transactional.id", "quirks-" + topic}});
  if (Error e{rd_kafka_init_transactions(p.get(), 30000)}) {
    std::printf("  init_transactions: %s\n", rd_kafka_error_string(e.get()));
    return;
  }
  int failed = 0;
  std::string first;
  bool fatal = false;
  int round = 0;
  for (; round < rounds && !fatal; ++round) {
    if (Error e{rd_kafka_begin_transaction(p.get())}) {
      first = first.empty() ? rd_kafka_error_string(e.get()) : first;
      fatal = rd_kafka_error_is_fatal(e.get());
      ++failed;
      continue;
    }
    for (int i = 0; i < messages; ++i)
      rd_kafka_producev(p.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                        RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
    if (Error e{rd_kafka_abort_transaction(p.get(), 30000)}) {
      first = first.empty() ? rd_kafka_error_string(e.get()) : first;
      fatal = rd_kafka_error_is_fatal(e.get());
      ++failed;
    }
    rd_kafka_poll(p.get(), 0);
  }
  std::printf(
      "  %d rounds of %d message(s) to partition %s: %d aborts failed%s%s%s\n", round, messages,
      partition == RD_KAFKA_PARTITION_UA ? "chosen by the partitioner" : std::to_string(partition).c_str(),
      failed, fatal ? " (fatal)" : "", first.empty() ? "" : ", first: ", first.c_str());
}

// Begin, produce one message, flush, commit, `rounds` times: the median
// milliseconds from the produce to the end of the flush (the partition's
// AddPartitionsToTxn and the produce round trip). Two producers in turn,
// as the writer does, so that a transaction rarely starts while the
// broker still writes the same id's previous markers.
void FirstMessageOfATransaction(const std::string& topic, int rounds) {
  std::vector<Kafka> producers;
  for (int i = 0; i < 2; ++i) {
    producers.push_back(NewClient(
        RD_KAFKA_PRODUCER,
        {{"transactional.id", "quirks-first-" + std::to_string(i) + "-" + topic}, {"linger.ms", "0"}}));
    if (Error e{rd_kafka_init_transactions(producers.back().get(), 30000)}) {
      std::printf("  init_transactions: %s\n", rd_kafka_error_string(e.get()));
      return;
    }
  }
  std::vector<double> flush_ms;
  for (int round = 0; round < rounds; ++round) {
    rd_kafka_t* p = producers[round % 2].get();
    if (Error e{rd_kafka_begin_transaction(p)}) {
      std::printf("  begin_transaction: %s\n", rd_kafka_error_string(e.get()));
      return;
    }
    auto started = Clock::now();
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
    rd_kafka_flush(p, 10000);
    flush_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
    if (Error e{rd_kafka_commit_transaction(p, 30000)}) {
      std::printf("  commit_transaction: %s\n", rd_kafka_error_string(e.get()));
      return;
    }
  }
  std::sort(flush_ms.begin(), flush_ms.end());
  std::printf("  %d transactions of one message: produce to flushed, median %.2f ms (p90 %.2f ms)\n", rounds,
              flush_ms[flush_ms.size() / 2], flush_ms[flush_ms.size() * 9 / 10]);
}

// Milliseconds from assign to the first record of `topic` (one record in
// it), or -1 with the error.
double FirstRecordAfterAssign(const std::string& topic, int64_t offset, std::string* error) {
  Kafka c =
      NewClient(RD_KAFKA_CONSUMER, {{"group.id", "quirks-assign-only"}, {"enable.auto.commit", "false"}});
  rd_kafka_poll_set_consumer(c.get());
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = offset;
  auto started = Clock::now();
  rd_kafka_resp_err_t err = rd_kafka_assign(c.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err) {
    *error = rd_kafka_err2str(err);
    return -1;
  }
  double ms = -1;
  while (ms < 0 && Clock::now() - started < std::chrono::seconds(15)) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 10);
    if (!m) continue;
    if (!m->err) ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c.get());
  if (ms < 0) *error = "no record within 15 s";
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_brokers = argv[1];
  std::string run = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  std::printf("librdkafka %s, broker %s\n", rd_kafka_version_str(), g_brokers.c_str());

  std::printf("defaults: heartbeat.interval.ms %s, session.timeout.ms %s, queued.min.messages %s\n",
              Default("heartbeat.interval.ms").c_str(), Default("session.timeout.ms").c_str(),
              Default("queued.min.messages").c_str());

  Kafka admin = NewClient(RD_KAFKA_PRODUCER, {});
  std::string topic = "quirks-" + run;
  CreateTopic(admin.get(), topic);

  {
    Kafka c = NewClient(RD_KAFKA_CONSUMER, {});
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(c.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    std::printf("assign() without group.id: %s\n", err ? rd_kafka_err2str(err) : "accepted");
  }

  std::printf("abort_transaction right after produce, no flush (librdkafka#4849):\n");
  AbortRightAfterProduce(topic, 0, 1, 300);
  AbortRightAfterProduce(topic, RD_KAFKA_PARTITION_UA, 5, 300);

  std::printf("a transaction's first message (1 ms registration timer without the patch):\n");
  FirstMessageOfATransaction(topic, 300);

  std::printf("first record of a fresh topic after assign (one record, already committed):\n");
  for (bool beginning : {true, false}) {
    std::string fresh = topic + (beginning ? "-b" : "-0");
    CreateTopic(admin.get(), fresh);
    rd_kafka_producev(admin.get(), RD_KAFKA_V_TOPIC(fresh.c_str()), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
    rd_kafka_flush(admin.get(), 10000);
    std::string error;
    double ms = FirstRecordAfterAssign(fresh, beginning ? RD_KAFKA_OFFSET_BEGINNING : 0, &error);
    std::printf("  at %s: %s\n", beginning ? "\"beginning\"" : "offset 0",
                ms < 0 ? error.c_str() : (std::to_string(static_cast<int>(ms)) + " ms").c_str());
  }
  return 0;
}
