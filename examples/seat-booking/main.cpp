// seat-booking: freshet's writer and view process with this repository's
// domain and projection. `seat-booking writer --config seat-booking.json`,
// `seat-booking views --config seat-booking.json`, and every other freshet
// subcommand, unchanged.
#include <freshet/main.h>

#include "seat_booking.h"
#include "seats_free.h"

int main(int argc, char** argv) {
  freshet::Registry registry;  // only this domain and projection: nothing of freshet's examples
  registry.domains.AddDecider<seat_booking::SeatBooking>("seat_booking");
  registry.projections.Add("seats_free", [] { return std::make_unique<seat_booking::SeatsFree>(); });
  return freshet::Main(argc, argv, registry);
}
