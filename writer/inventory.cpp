#include "writer/inventory.h"

namespace freshet {
namespace {

constexpr int64_t kMaxQuantity = 1'000'000'000;
constexpr size_t kMaxNameLength = 200;

Status RequireName(const nlohmann::json& body, const char* field, std::string* out) {
  auto it = body.find(field);
  if (it == body.end()) return Status::InvalidArgument(std::string(field) + ": required");
  if (!it->is_string()) return Status::InvalidArgument(std::string(field) + ": expected a string");
  *out = it->get<std::string>();
  if (out->empty() || out->size() > kMaxNameLength)
    return Status::InvalidArgument(std::string(field) + ": must be 1 to 200 characters");
  return Status::Ok();
}

Status RequireQuantity(const nlohmann::json& body, const char* field, int64_t min, int64_t* out) {
  auto it = body.find(field);
  if (it == body.end()) return Status::InvalidArgument(std::string(field) + ": required");
  if (!it->is_number_integer()) return Status::InvalidArgument(std::string(field) + ": expected an integer");
  *out = it->get<int64_t>();
  if (*out < min || *out > kMaxQuantity)
    return Status::InvalidArgument(std::string(field) + ": must be between " + std::to_string(min) + " and " +
                                   std::to_string(kMaxQuantity));
  return Status::Ok();
}

const std::string& SkuOf(const Command& c) { return c.data.at("sku").get_ref<const std::string&>(); }

Event MakeEvent(const char* type, const Command& c, const std::string& sku, int64_t qty, int64_t delta,
                const StockItem& after) {
  Event e;
  e.type = type;
  e.id = c.id;
  e.ts_ms = NowMillis();
  // Filled field by field: a braced initializer list would copy every value.
  auto& d = e.data;
  d["store"] = c.partition_key;
  d["sku"] = sku;
  d["qty"] = qty;
  d["delta"] = delta;
  d["on_hand"] = after.on_hand;
  d["reserved"] = after.reserved;
  return e;
}

std::string Describe(const Command& c, const StockItem& item) {
  return "store " + c.partition_key + " sku " + SkuOf(c) + " has on_hand " + std::to_string(item.on_hand) +
         ", reserved " + std::to_string(item.reserved);
}

}  // namespace

Result<Command> InventoryDomain::ParseCommand(const nlohmann::json& body) {
  if (!body.is_object()) return Status::InvalidArgument("command: expected a JSON object");
  Command c;
  auto type = body.find("type");
  if (type == body.end() || !type->is_string()) return Status::InvalidArgument("type: required string");
  c.type = type->get<std::string>();
  std::string sku;
  FRESHET_RETURN_IF_ERROR(RequireName(body, "store", &c.partition_key));
  FRESHET_RETURN_IF_ERROR(RequireName(body, "sku", &sku));
  if (auto id = body.find("id"); id != body.end()) {
    if (!id->is_string() || id->get<std::string>().empty() || id->get<std::string>().size() > 200)
      return Status::InvalidArgument("id: expected a string of 1 to 200 characters");
    c.id = id->get<std::string>();
  }
  c.data = {{"sku", sku}};
  int64_t n = 0;
  if (c.type == "receive" || c.type == "reserve" || c.type == "release" || c.type == "sell") {
    FRESHET_RETURN_IF_ERROR(RequireQuantity(body, "qty", 1, &n));
    c.data["qty"] = n;
    if (c.type == "sell") {
      bool from_reservation = false;
      if (auto f = body.find("from_reservation"); f != body.end()) {
        if (!f->is_boolean()) return Status::InvalidArgument("from_reservation: expected true or false");
        from_reservation = f->get<bool>();
      }
      c.data["from_reservation"] = from_reservation;
    }
  } else if (c.type == "adjust") {
    FRESHET_RETURN_IF_ERROR(RequireQuantity(body, "counted", 0, &n));
    c.data["counted"] = n;
  } else {
    return Status::InvalidArgument("type: unknown command type \"" + c.type +
                                   "\" (expected receive, reserve, release, sell or adjust)");
  }
  return c;
}

Result<std::vector<Event>> InventoryDomain::Decide(const StateView<StockItem>& state, const Command& c) {
  // Each field is looked up once: Decide runs for every command, and a
  // lookup in the command's JSON is a string-keyed map search.
  const std::string& sku = SkuOf(c);
  const StockItem* found = state.Find(EntityKeyFromPath(c.partition_key, sku));
  StockItem item = found ? *found : StockItem{};
  int64_t available = item.on_hand - item.reserved;
  if (c.type == "receive") {
    int64_t qty = c.data.at("qty").get<int64_t>();
    if (item.on_hand + qty > kMaxQuantity)
      return Status::Refused("receive would take on_hand above " + std::to_string(kMaxQuantity));
    item.on_hand += qty;
    return OneEvent(MakeEvent("StockReceived", c, sku, qty, qty, item));
  }
  if (c.type == "reserve") {
    int64_t qty = c.data.at("qty").get<int64_t>();
    if (qty > available)
      return Status::Refused("insufficient stock to reserve " + std::to_string(qty) + ": " +
                             Describe(c, item));
    item.reserved += qty;
    return OneEvent(MakeEvent("StockReserved", c, sku, qty, 0, item));
  }
  if (c.type == "release") {
    int64_t qty = c.data.at("qty").get<int64_t>();
    if (qty > item.reserved)
      return Status::Refused("cannot release " + std::to_string(qty) + ": " + Describe(c, item));
    item.reserved -= qty;
    return OneEvent(MakeEvent("ReservationReleased", c, sku, qty, 0, item));
  }
  if (c.type == "sell") {
    int64_t qty = c.data.at("qty").get<int64_t>();
    bool from_reservation = c.data.at("from_reservation").get<bool>();
    if (from_reservation) {
      if (qty > item.reserved)
        return Status::Refused("cannot sell " + std::to_string(qty) +
                               " from reservations: " + Describe(c, item));
      item.reserved -= qty;
    } else if (qty > available) {
      return Status::Refused("insufficient stock to sell " + std::to_string(qty) + ": " + Describe(c, item));
    }
    item.on_hand -= qty;
    Event e = MakeEvent("StockSold", c, sku, qty, -qty, item);
    e.data["from_reservation"] = from_reservation;
    return OneEvent(std::move(e));
  }
  if (c.type == "adjust") {
    int64_t counted = c.data.at("counted").get<int64_t>();
    if (counted < item.reserved)
      return Status::Refused(
          "count of " + std::to_string(counted) +
          " is below the reserved quantity; release reservations first: " + Describe(c, item));
    int64_t delta = counted - item.on_hand;
    item.on_hand = counted;
    Event e = MakeEvent("StockAdjusted", c, sku, counted, delta, item);
    return OneEvent(std::move(e));
  }
  return Status::InvalidArgument("type: unknown command type \"" + c.type + "\"");
}

std::string InventoryDomain::EntityKeyOf(const Event& e) {
  auto store = e.data.find("store");
  auto sku = e.data.find("sku");
  if (store == e.data.end() || sku == e.data.end() || !store->is_string() || !sku->is_string()) return "";
  return EntityKeyFromPath(store->get<std::string>(), sku->get<std::string>());
}

StockItem InventoryDomain::Evolve(const StockItem& before, const Event& e) {
  // Events carry the state after them; delta is kept for views that sum.
  StockItem after = before;
  if (auto it = e.data.find("on_hand"); it != e.data.end() && it->is_number_integer()) after.on_hand = *it;
  if (auto it = e.data.find("reserved"); it != e.data.end() && it->is_number_integer()) after.reserved = *it;
  return after;
}

nlohmann::json InventoryDomain::EntityToJson(const StockItem& item) {
  return {{"on_hand", item.on_hand}, {"reserved", item.reserved}};
}

std::string InventoryDomain::EntityKeyFromPath(const std::string& store, const std::string& sku) {
  return store + '\x1f' + sku;
}

nlohmann::json InventoryDomain::EntityToSnapshot(const StockItem& item) {
  return {item.on_hand, item.reserved};
}

Result<StockItem> InventoryDomain::EntityFromSnapshot(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 2 || !j[0].is_number_integer() || !j[1].is_number_integer())
    return Status::InvalidArgument("stock item snapshot is not [on_hand, reserved]");
  return StockItem{j[0].get<int64_t>(), j[1].get<int64_t>()};
}

std::unique_ptr<Domain> MakeInventoryDomain() {
  return std::make_unique<DomainAdapter<InventoryDomain>>("inventory");
}

}  // namespace freshet
