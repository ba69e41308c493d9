// The freshet command line over a registry of domains and projections: the
// stock binary's main and a user's own binary both end up here.
#include <CLI/CLI.hpp>
#include <functional>

#include "cli/commands.h"
#include "core/kafka.h"
#include "freshet/main.h"
#include "views/view_runner.h"
#include "writer/writer.h"

namespace freshet {

namespace {

std::string VersionText() {
  return std::string("freshet ") + FRESHET_VERSION + " (librdkafka " + KafkaLibraryVersion() + ")";
}

}  // namespace

Registry StockRegistry() { return Registry{StockDomains(), StockProjections()}; }

int Main(int argc, char** argv, const Registry& registry) {
  CLI::App app{"freshet: keeps read views fresh from a Kafka event log"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText());

  std::string config_path;
  auto* writer = app.add_subcommand(
      "writer", "Serve commands: decide, publish in Kafka transactions, answer (partition, offset)");
  writer
      ->add_option("-c,--config", config_path,
                   "JSON config file (comments allowed); FRESHET_* variables override it")
      ->check(CLI::ExistingFile);

  auto* views = app.add_subcommand("views", "Consume the topic into the views (Postgres), exactly once");
  views
      ->add_option("-c,--config", config_path,
                   "JSON config file (comments allowed); FRESHET_* variables override it")
      ->check(CLI::ExistingFile);

  auto* check =
      app.add_subcommand("check-config", "Validate a config file and print the effective configuration");
  check->add_option("-c,--config", config_path, "JSON config file")->check(CLI::ExistingFile);

  std::string rebuild_view;
  auto* rebuild = app.add_subcommand(
      "rebuild",
      "Reprocess a view from offset zero into a new table beside the live one, then swap it in atomically");
  rebuild->add_option("view", rebuild_view, "The view's name in views.definitions")->required();
  rebuild->add_option("-c,--config", config_path, "JSON config file")->check(CLI::ExistingFile);
  std::string rebuild_store;
  rebuild
      ->add_option(
          "--store", rebuild_store,
          "Which copy: postgres (default when the view has one) or rocksdb (rebuilt inside the running "
          "view process, or here when none runs)")
      ->check(CLI::IsMember({"postgres", "rocksdb"}));

  InspectOptions inspect_options;
  auto* inspect = app.add_subcommand(
      "inspect",
      "Sample a topic, say which format and envelope its records have, and print a view definition for it");
  inspect->add_option("topic", inspect_options.topic, "The topic to look at")->required();
  inspect->add_option("-c,--config", inspect_options.config_path, "JSON config file (for kafka.brokers)")
      ->check(CLI::ExistingFile);
  inspect->add_option("--brokers", inspect_options.brokers,
                      "Kafka bootstrap servers (default: kafka.brokers)");
  inspect->add_option("-n,--records", inspect_options.records, "How many records to sample")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  inspect->add_flag("--from-end", inspect_options.from_end,
                    "Sample the newest records instead of the oldest");
  inspect->add_option("--name", inspect_options.view_name, "The view's name in the printed definition");
  inspect->add_option("--schema-registry", inspect_options.schema_registry,
                      "The schema registry's URL, for Avro, Protobuf and JSON Schema topics "
                      "(default: FRESHET_SCHEMA_REGISTRY_URL)");
  inspect->add_option("--timeout", inspect_options.timeout_s, "Seconds to spend reading")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();

  DemoLoadOptions load;
  auto* demo = app.add_subcommand("demo-load", "Send a stream of realistic inventory commands to a writer");
  demo->add_option("--writer", load.writer_url, "Writer base URL")->capture_default_str();
  demo->add_option("--stores", load.stores, "Number of stores")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  demo->add_option("--skus", load.skus, "SKUs per store")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  demo->add_option("--commands", load.commands, "Commands after the initial stock")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  demo->add_option("--clients", load.clients, "Concurrent HTTP connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  demo->add_option("--seed", load.seed, "Random seed")->capture_default_str();
  demo->add_option(
          "--retry-for", load.retry_seconds,
          "Seconds to retry a command (same idempotency key) while the writer restarts or hands over; 0: "
          "no retries")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  demo->add_option("--wait-views", load.wait_views_url,
                   "View process base URL: afterwards, wait until it has applied every accepted command");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*writer) return RunWriterCommand(config_path, registry.domains);
  if (*views) return RunViewsCommand(config_path, registry.projections);
  if (*check) return RunCheckConfigCommand(config_path);
  if (*demo) return RunDemoLoadCommand(load);
  if (*inspect) return RunInspectCommand(inspect_options);
  if (*rebuild) return RunRebuildCommand(config_path, rebuild_view, rebuild_store, registry.projections);
  return 2;
}

namespace {

// `prog [--config FILE]` for one role.
int OneRoleMain(int argc, char** argv, const std::string& description,
                const std::function<int(const std::string&)>& run) {
  CLI::App app{description};
  app.set_version_flag("--version", VersionText());
  std::string config_path;
  app.add_option("-c,--config", config_path,
                 "JSON config file (comments allowed); FRESHET_* variables override it")
      ->check(CLI::ExistingFile);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return run(config_path);
}

}  // namespace

int WriterMain(int argc, char** argv, const DomainRegistry& domains) {
  return OneRoleMain(argc, argv,
                     "Serve commands: decide, publish in Kafka transactions, answer (partition, offset)",
                     [&](const std::string& path) { return RunWriterCommand(path, domains); });
}

int ViewsMain(int argc, char** argv, const ProjectionRegistry& projections) {
  return OneRoleMain(argc, argv, "Consume the topic into the views, exactly once",
                     [&](const std::string& path) { return RunViewsCommand(path, projections); });
}

}  // namespace freshet
