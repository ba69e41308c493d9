// `freshet inspect TOPIC`: reads a sample of a topic (read_committed), says
// what its records look like and prints a view definition for it. The
// summary goes to stderr and the definition to stdout, so that
// `freshet inspect orders > orders-view.json` keeps only the definition.
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "core/config.h"
#include "core/kafka.h"
#include "sources/topic_inspector.h"
#include "views/view_spec.h"

namespace freshet {

int RunInspectCommand(const InspectOptions& options) {
  std::string brokers = options.brokers;
  if (brokers.empty()) {
    auto config = LoadConfig(options.config_path);
    if (!config.ok()) {
      std::cerr << "freshet: config error: " << config.status().message() << "\n";
      return 2;
    }
    brokers = config->kafka.brokers;
  }
  if (brokers.empty()) {
    std::cerr << "freshet: inspect: --brokers (or kafka.brokers in the config, or FRESHET_KAFKA_BROKERS) is "
                 "required\n";
    return 2;
  }
  KafkaClientOptions kafka{brokers, {}};
  auto partitions = PartitionCount(kafka, options.topic, std::chrono::seconds(15));
  if (!partitions.ok()) {
    std::cerr << "freshet: inspect: " << partitions.status().message() << "\n";
    return partitions.status().code() == StatusCode::kNotFound ? 2 : 1;
  }
  auto consumer = Consumer::Create(kafka, "");
  if (!consumer.ok()) {
    std::cerr << "freshet: inspect: " << consumer.status().message() << "\n";
    return 1;
  }
  // Spread the sample over the partitions: each gives its share, from its
  // first record or its last ones.
  int64_t share = std::max<int64_t>(1, (options.records + *partitions - 1) / *partitions);
  std::vector<TopicPartitionOffset> assignment;
  int open = 0;
  for (int32_t p = 0; p < *partitions; ++p) {
    auto marks = (*consumer)->QueryWatermarks(options.topic, p, std::chrono::seconds(10));
    if (!marks.ok()) {
      std::cerr << "freshet: inspect: partition " << p << ": " << marks.status().message() << "\n";
      return 1;
    }
    if (marks->second <= marks->first) continue;
    int64_t start = options.from_end ? std::max(marks->first, marks->second - share) : marks->first;
    assignment.push_back({options.topic, p, start});
    ++open;
  }
  std::vector<SampleRecord> sample;
  std::map<int32_t, int64_t> taken;
  if (!assignment.empty()) {
    if (Status st = (*consumer)->Assign(assignment); !st.ok()) {
      std::cerr << "freshet: inspect: " << st.message() << "\n";
      return 1;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_s);
    while (open > 0 && static_cast<int64_t>(sample.size()) < options.records &&
           std::chrono::steady_clock::now() < deadline) {
      KafkaMessage m;
      int32_t eof = -1;
      auto outcome = (*consumer)->Poll(std::chrono::milliseconds(200), &m, &eof);
      if (!outcome.ok()) continue;
      if (*outcome == Consumer::PollOutcome::kPartitionEnd) {
        --open;
        continue;
      }
      if (*outcome != Consumer::PollOutcome::kMessage || taken[m.partition()] >= share) continue;
      ++taken[m.partition()];
      SampleRecord r;
      r.partition = m.partition();
      r.offset = m.offset();
      if (m.has_key()) r.key = std::string(m.key());
      if (m.has_value()) r.value = std::string(m.value());
      sample.push_back(std::move(r));
    }
  }
  std::string name =
      options.view_name.empty() ? options.topic.substr(options.topic.rfind('.') + 1) : options.view_name;
  SchemaRegistryConfig registry;
  if (const char* url = std::getenv("FRESHET_SCHEMA_REGISTRY_URL")) registry.url = url;
  if (!options.schema_registry.empty()) registry.url = options.schema_registry;
  for (auto [name_var, field] : {std::pair{"FRESHET_SCHEMA_REGISTRY_USERNAME", &registry.username},
                                 std::pair{"FRESHET_SCHEMA_REGISTRY_PASSWORD", &registry.password},
                                 std::pair{"FRESHET_SCHEMA_REGISTRY_TOKEN", &registry.token}})
    if (const char* v = std::getenv(name_var)) *field = v;
  Inspection in = InspectSample(sample, options.topic, name, registry);

  std::cerr << "topic " << options.topic << ": " << in.records << " records sampled from " << *partitions
            << " partitions (" << (options.from_end ? "the newest" : "the oldest") << "), " << in.tombstones
            << " null values, " << in.null_keys << " null keys, " << in.distinct_keys << " distinct keys\n";
  if (in.format == "unsupported") {
    std::cerr << "cannot make a view of it: " << in.why << "\n";
    return 1;
  }
  std::cerr << "format " << in.format << ", envelope " << in.envelope << ": " << in.why
            << (in.debezium_schemas ? " (with schemas: schemas.enable=true)" : "") << "\n";
  auto print = [&](const char* title, const std::vector<InspectedField>& fields) {
    std::cerr << title << ":\n";
    for (const auto& f : fields)
      std::cerr << "  " << f.column << std::string(f.column.size() < 20 ? 20 - f.column.size() : 1, ' ')
                << f.type << std::string(f.type.size() < 12 ? 12 - f.type.size() : 1, ' ') << "from "
                << f.pointer << "  (" << f.seen
                << (f.pointer[0] == '/' ? ", in " + std::to_string(f.present) + " records" : "") << ")\n";
  };
  if (!in.schema_fields.empty()) {
    std::cerr << "fields of the writer schema (" << in.schema << "):\n";
    for (const auto& f : in.schema_fields)
      std::cerr << "  " << f.pointer << std::string(f.pointer.size() < 20 ? 20 - f.pointer.size() : 1, ' ')
                << f.column_type
                << std::string(f.column_type.size() < 12 ? 12 - f.column_type.size() : 1, ' ') << f.declared
                << "\n";
  }
  print("key", in.key_fields);
  print("columns", in.fields);
  if (in.definition.is_null()) {
    std::cerr << "no definition: " << in.why << "\n";
    return 1;
  }
  // Printed only once it parses as a definition: what is printed works.
  auto parsed = ParseViewSpecs(nlohmann::ordered_json::array({in.definition}), "definition");
  if (!parsed.ok()) {
    std::cerr << "freshet: inspect: the guessed definition does not parse (a bug): "
              << parsed.status().message() << "\n";
    return 1;
  }
  std::cerr << "a view definition for views.definitions (review the guesses before using it):\n";
  std::cout << in.definition.dump(2) << "\n";
  return 0;
}

}  // namespace freshet
