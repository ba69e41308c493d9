#include "seat_booking.h"

#include <set>

namespace seat_booking {
namespace {

using freshet::Command;
using freshet::Event;
using freshet::Result;
using freshet::Status;

std::string SeatKey(const std::string& show, const std::string& seat) { return "seat:" + show + ":" + seat; }
std::string OrderKey(const std::string& order) { return "order:" + order; }

Status RequireString(const nlohmann::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_string() || it->get_ref<const std::string&>().empty() ||
      it->get_ref<const std::string&>().size() > 100)
    return Status::InvalidArgument(std::string(field) + ": required string of 1 to 100 characters");
  return Status::Ok();
}

Status RequireSeats(const nlohmann::json& body) {
  auto it = body.find("seats");
  if (it == body.end() || !it->is_array() || it->empty())
    return Status::InvalidArgument("seats: required non-empty array");
  std::set<std::string> seen;
  for (const auto& s : *it) {
    if (!s.is_string() || s.get_ref<const std::string&>().empty())
      return Status::InvalidArgument("seats: names must be strings");
    if (!seen.insert(s.get<std::string>()).second)
      return Status::InvalidArgument("seats: " + s.get<std::string>() + " twice");
  }
  return Status::Ok();
}

Status RequireTime(const nlohmann::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
    return Status::InvalidArgument(std::string(field) + ": required non-negative integer (ms)");
  return Status::Ok();
}

Event MakeEvent(const char* type, const Command& c, int64_t now, nlohmann::json data) {
  Event e;
  e.type = type;
  e.id = c.id;
  e.ts_ms = now;
  e.data = std::move(data);
  e.data["venue"] = c.partition_key;
  return e;
}

bool ActiveHold(const Place* p, int64_t now) { return p && p->state == "held" && p->expires_at > now; }

}  // namespace

Result<Command> SeatBooking::ParseCommand(const nlohmann::json& body) {
  if (!body.is_object()) return Status::InvalidArgument("command: expected a JSON object");
  FRESHET_RETURN_IF_ERROR(RequireString(body, "type"));
  FRESHET_RETURN_IF_ERROR(RequireString(body, "venue"));
  Command c;
  c.type = body["type"].get<std::string>();
  c.partition_key = body["venue"].get<std::string>();
  if (auto id = body.find("id"); id != body.end()) {
    if (!id->is_string()) return Status::InvalidArgument("id: expected a string");
    c.id = id->get<std::string>();
  }
  if (c.type == "add_seats") {
    FRESHET_RETURN_IF_ERROR(RequireString(body, "show"));
    FRESHET_RETURN_IF_ERROR(RequireSeats(body));
  } else if (c.type == "hold") {
    FRESHET_RETURN_IF_ERROR(RequireString(body, "show"));
    FRESHET_RETURN_IF_ERROR(RequireString(body, "order"));
    FRESHET_RETURN_IF_ERROR(RequireSeats(body));
    FRESHET_RETURN_IF_ERROR(RequireTime(body, "now"));
    if (body.contains("hold_ms")) FRESHET_RETURN_IF_ERROR(RequireTime(body, "hold_ms"));
  } else if (c.type == "buy") {
    FRESHET_RETURN_IF_ERROR(RequireString(body, "order"));
    FRESHET_RETURN_IF_ERROR(RequireTime(body, "now"));
  } else if (c.type == "release") {
    FRESHET_RETURN_IF_ERROR(RequireString(body, "order"));
  } else {
    return Status::InvalidArgument("type: expected add_seats, hold, buy or release, got \"" + c.type + "\"");
  }
  c.data = body;
  return c;
}

Result<std::vector<Event>> SeatBooking::Decide(const freshet::StateView<Place>& state, const Command& c) {
  const nlohmann::json& d = c.data;
  std::vector<Event> events;
  if (c.type == "add_seats") {
    const std::string show = d["show"];
    for (const auto& seat : d["seats"]) {
      if (state.Find(SeatKey(show, seat))) continue;  // adding a seat twice changes nothing
      events.push_back(MakeEvent("SeatAdded", c, 0, {{"show", show}, {"seat", seat}, {"state", "free"}}));
    }
    return events;
  }
  const std::string order = d["order"];
  const Place* existing = state.Find(OrderKey(order));
  if (c.type == "hold") {
    const std::string show = d["show"];
    int64_t now = d["now"];
    int64_t expires_at = now + d.value("hold_ms", int64_t{600000});
    if (existing && existing->state == "sold")
      return Status::Refused("order " + order + " is already bought");
    std::vector<std::string> seats;
    if (ActiveHold(existing, now)) {
      if (existing->show != show)
        return Status::Refused("order " + order + " holds seats of show " + existing->show);
      seats = existing->seats;
    }
    for (const auto& s : d["seats"])
      if (std::find(seats.begin(), seats.end(), s.get<std::string>()) == seats.end()) seats.push_back(s);
    if (seats.size() > kMaxSeatsPerOrder)
      return Status::Refused("an order holds at most " + std::to_string(kMaxSeatsPerOrder) +
                             " seats; order " + order + " would hold " + std::to_string(seats.size()));
    for (const auto& seat : seats) {
      const Place* p = state.Find(SeatKey(show, seat));
      if (!p) return Status::Refused("show " + show + " has no seat " + seat);
      if (p->state == "sold") return Status::Refused("seat " + seat + " of show " + show + " is sold");
      if (ActiveHold(p, now) && p->order != order)
        return Status::Refused("seat " + seat + " of show " + show + " is held by another order until " +
                               std::to_string(p->expires_at));
    }
    for (const auto& seat : seats)
      events.push_back(MakeEvent(
          "SeatHeld", c, now,
          {{"show", show}, {"seat", seat}, {"order", order}, {"state", "held"}, {"expires_at", expires_at}}));
    events.push_back(MakeEvent(
        "OrderHeld", c, now,
        {{"order", order}, {"show", show}, {"seats", seats}, {"state", "held"}, {"expires_at", expires_at}}));
    return events;
  }
  if (c.type == "buy") {
    int64_t now = d["now"];
    if (!existing || existing->state != "held") return Status::Refused("order " + order + " holds no seats");
    if (existing->expires_at <= now)
      return Status::Refused("order " + order + "'s hold expired at " + std::to_string(existing->expires_at));
    for (const auto& seat : existing->seats)
      events.push_back(
          MakeEvent("SeatSold", c, now,
                    {{"show", existing->show}, {"seat", seat}, {"order", order}, {"state", "sold"}}));
    events.push_back(MakeEvent(
        "OrderSold", c, now,
        {{"order", order}, {"show", existing->show}, {"seats", existing->seats}, {"state", "sold"}}));
    return events;
  }
  // release
  if (!existing || existing->state != "held") return Status::Refused("order " + order + " holds no seats");
  for (const auto& seat : existing->seats) {
    const Place* p = state.Find(SeatKey(existing->show, seat));
    if (p && p->state == "held" && p->order == order)
      events.push_back(
          MakeEvent("SeatReleased", c, 0, {{"show", existing->show}, {"seat", seat}, {"state", "free"}}));
  }
  events.push_back(MakeEvent(
      "OrderReleased", c, 0,
      {{"order", order}, {"show", existing->show}, {"seats", existing->seats}, {"state", "released"}}));
  return events;
}

std::string SeatBooking::EntityKeyOf(const Event& e) {
  if (e.type.rfind("Order", 0) == 0) return OrderKey(e.data.value("order", ""));
  return SeatKey(e.data.value("show", ""), e.data.value("seat", ""));
}

Place SeatBooking::Evolve(const Place& before, const Event& e) {
  // Events carry the state after them.
  Place after = before;
  after.state = e.data.value("state", before.state);
  after.order = e.type.rfind("Order", 0) == 0 ? "" : e.data.value("order", "");
  after.expires_at = e.data.value("expires_at", int64_t{0});
  if (e.type.rfind("Order", 0) == 0) {
    after.show = e.data.value("show", "");
    after.seats = e.data.value("seats", std::vector<std::string>{});
  }
  return after;
}

nlohmann::json SeatBooking::EntityToJson(const Place& p) {
  nlohmann::json j = {{"state", p.state}};
  if (!p.order.empty()) j["order"] = p.order;
  if (p.expires_at) j["expires_at"] = p.expires_at;
  if (!p.show.empty()) j["show"] = p.show;
  if (!p.seats.empty()) j["seats"] = p.seats;
  return j;
}

std::string SeatBooking::EntityKeyFromPath(const std::string&, const std::string& entity) { return entity; }

Result<Place> SeatBooking::EntityFromSnapshot(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("state")) return Status::InvalidArgument("place snapshot without state");
  Place p;
  p.state = j.value("state", "");
  p.order = j.value("order", "");
  p.expires_at = j.value("expires_at", int64_t{0});
  p.show = j.value("show", "");
  p.seats = j.value("seats", std::vector<std::string>{});
  return p;
}

}  // namespace seat_booking
