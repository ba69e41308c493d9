// freshet as a library: your own binary with your own domains and C++
// projections, and the whole stock behaviour (CLI, --help, config file and
// FRESHET_* overrides, HTTP API, metrics, signals, exactly-once views).
//
//   #include <freshet/main.h>
//   #include "my_domain.h"        // a decider struct, see writer/decider.h
//   #include "my_projection.h"    // a freshet::Projection, see views/projection.h
//
//   int main(int argc, char** argv) {
//     freshet::Registry registry = freshet::StockRegistry();  // or start empty
//     registry.domains.AddDecider<MyDomain>("bookings");       // writer.domain = "bookings"
//     registry.projections.Add("seats_free", [] { return std::make_unique<SeatsFree>(); });
//     return freshet::Main(argc, argv, registry);              // `prog writer`, `prog views`, ...
//   }
//
// A view definition runs a registered projection with
// {"name": "<its view name>", "kind": "cpp", "projection": "seats_free"}.
// Link with freshet::freshet (find_package(freshet CONFIG REQUIRED)).
#pragma once

#include "freshet/version.h"
#include "views/projection_registry.h"
#include "writer/domain_registry.h"

namespace freshet {

struct Registry {
  DomainRegistry domains;
  ProjectionRegistry projections;
};

// inventory, accounts and stock_levels: what the stock `freshet` binary runs.
Registry StockRegistry();

// The whole `freshet` command line (writer, views, check-config, rebuild,
// inspect, demo-load) over `registry`. Returns the exit code: 0 success,
// 1 runtime failure, 2 bad usage or configuration.
int Main(int argc, char** argv, const Registry& registry);

// One role only: `prog [--config FILE]` runs the writer (or the views) with
// the stock configuration rules; --help and --version as usual.
int WriterMain(int argc, char** argv, const DomainRegistry& domains);
int ViewsMain(int argc, char** argv, const ProjectionRegistry& projections);

}  // namespace freshet
