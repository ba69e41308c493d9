// A seat-booking domain for freshet's writer, built outside freshet's tree.
//
// A venue is one partition key: its shows' seats and its orders live on one
// Kafka partition, so the rules below, which span several seats and an
// order, are checked against one consistent in-memory state.
//
// Commands (JSON, "venue" is the partition key, "now" the client's clock in
// ms: deciding never reads a wall clock, so a replay decides the same):
//   {"type": "add_seats", "venue", "show", "seats": ["A1", ...]}
//   {"type": "hold",      "venue", "show", "order", "seats": [...], "now", "hold_ms" (default 600000)}
//   {"type": "buy",       "venue", "order", "now"}
//   {"type": "release",   "venue", "order"}
// Rules, each refused with its own reason (HTTP 409):
//   - a seat must exist, and is sold at most once;
//   - a seat held by another order is taken until that hold expires;
//   - an order holds at most 10 seats;
//   - an order buys only while its hold lasts.
// Events: SeatAdded, SeatHeld, SeatSold, SeatReleased (entity: one seat) and
// OrderHeld, OrderSold, OrderReleased (entity: one order). Each carries the
// state after it, so a view needs no history.
#pragma once

#include <freshet/main.h>

#include <cstdint>
#include <string>
#include <vector>

namespace seat_booking {

// A seat or an order: one entity type for the whole partition's state.
struct Place {
  std::string state;               // seat: free|held|sold; order: held|sold|released; "" = absent
  std::string order;               // seat: the order holding or owning it
  int64_t expires_at = 0;          // held: until when (ms)
  std::string show;                // order: its show
  std::vector<std::string> seats;  // order: its seats
};

struct SeatBooking {
  using Entity = Place;
  static freshet::Result<freshet::Command> ParseCommand(const nlohmann::json& body);
  static freshet::Result<std::vector<freshet::Event>> Decide(const freshet::StateView<Place>& state,
                                                             const freshet::Command& command);
  static std::string EntityKeyOf(const freshet::Event& event);
  static Place Evolve(const Place& before, const freshet::Event& event);
  static nlohmann::json EntityToJson(const Place& place);
  // GET /state/{venue}/{entity}: entity "seat:SHOW:SEAT" or "order:ORDER".
  static std::string EntityKeyFromPath(const std::string& venue, const std::string& entity);
  static nlohmann::json EntityToSnapshot(const Place& place) { return EntityToJson(place); }
  static freshet::Result<Place> EntityFromSnapshot(const nlohmann::json& j);
};

inline constexpr size_t kMaxSeatsPerOrder = 10;

}  // namespace seat_booking
