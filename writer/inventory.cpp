#include "writer/inventory.h"

#include "core/json_text.h"

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

TypedEvent<StockEvent> MakeEvent(std::string_view type, const Command& c, const std::string& sku, int64_t qty,
                                 int64_t delta, const StockItem& after) {
  return {type, StockEvent{c.partition_key, sku, qty, delta, after.on_hand, after.reserved, std::nullopt}};
}

Status RequireEventInteger(const nlohmann::json& data, const char* field, int64_t* out) {
  auto it = data.find(field);
  if (it == data.end() || !it->is_number_integer())
    return Status::InvalidArgument(std::string("data.") + field + ": missing or not an integer");
  *out = it->get<int64_t>();
  return Status::Ok();
}

Status RequireEventString(const nlohmann::json& data, const char* field, std::string* out) {
  auto it = data.find(field);
  if (it == data.end() || !it->is_string())
    return Status::InvalidArgument(std::string("data.") + field + ": missing or not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

std::string Describe(const Command& c, const InventoryCommand& f, const StockItem& item) {
  return "store " + c.partition_key + " sku " + f.sku + " has on_hand " + std::to_string(item.on_hand) +
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
  InventoryCommand fields;
  fields.sku = std::move(sku);
  if (c.type == "receive" || c.type == "reserve" || c.type == "release" || c.type == "sell") {
    FRESHET_RETURN_IF_ERROR(RequireQuantity(body, "qty", 1, &fields.qty));
    if (c.type == "sell") {
      if (auto f = body.find("from_reservation"); f != body.end()) {
        if (!f->is_boolean()) return Status::InvalidArgument("from_reservation: expected true or false");
        fields.from_reservation = f->get<bool>();
      }
    }
  } else if (c.type == "adjust") {
    FRESHET_RETURN_IF_ERROR(RequireQuantity(body, "counted", 0, &fields.counted));
  } else {
    return Status::InvalidArgument("type: unknown command type \"" + c.type +
                                   "\" (expected receive, reserve, release, sell or adjust)");
  }
  c.fields = std::move(fields);
  return c;
}

Result<std::vector<TypedEvent<StockEvent>>> InventoryDomain::Decide(const StateView<StockItem>& state,
                                                                    const Command& c,
                                                                    const InventoryCommand& f) {
  const std::string& sku = f.sku;
  const StockItem* found = state.Find(EntityKeyFromPath(c.partition_key, sku));
  StockItem item = found ? *found : StockItem{};
  int64_t available = item.on_hand - item.reserved;
  if (c.type == "receive") {
    int64_t qty = f.qty;
    if (item.on_hand + qty > kMaxQuantity)
      return Status::Refused("receive would take on_hand above " + std::to_string(kMaxQuantity));
    item.on_hand += qty;
    return OneEvent(MakeEvent("StockReceived", c, sku, qty, qty, item));
  }
  if (c.type == "reserve") {
    int64_t qty = f.qty;
    if (qty > available)
      return Status::Refused("insufficient stock to reserve " + std::to_string(qty) + ": " +
                             Describe(c, f, item));
    item.reserved += qty;
    return OneEvent(MakeEvent("StockReserved", c, sku, qty, 0, item));
  }
  if (c.type == "release") {
    int64_t qty = f.qty;
    if (qty > item.reserved)
      return Status::Refused("cannot release " + std::to_string(qty) + ": " + Describe(c, f, item));
    item.reserved -= qty;
    return OneEvent(MakeEvent("ReservationReleased", c, sku, qty, 0, item));
  }
  if (c.type == "sell") {
    int64_t qty = f.qty;
    bool from_reservation = f.from_reservation;
    if (from_reservation) {
      if (qty > item.reserved)
        return Status::Refused("cannot sell " + std::to_string(qty) +
                               " from reservations: " + Describe(c, f, item));
      item.reserved -= qty;
    } else if (qty > available) {
      return Status::Refused("insufficient stock to sell " + std::to_string(qty) + ": " +
                             Describe(c, f, item));
    }
    item.on_hand -= qty;
    auto e = MakeEvent("StockSold", c, sku, qty, -qty, item);
    e.data.from_reservation = from_reservation;
    return OneEvent(std::move(e));
  }
  if (c.type == "adjust") {
    int64_t counted = f.counted;
    if (counted < item.reserved)
      return Status::Refused(
          "count of " + std::to_string(counted) +
          " is below the reserved quantity; release reservations first: " + Describe(c, f, item));
    int64_t delta = counted - item.on_hand;
    item.on_hand = counted;
    return OneEvent(MakeEvent("StockAdjusted", c, sku, counted, delta, item));
  }
  return Status::InvalidArgument("type: unknown command type \"" + c.type + "\"");
}

std::string InventoryDomain::EntityKeyOf(const StockEvent& e) { return EntityKeyFromPath(e.store, e.sku); }

StockItem InventoryDomain::Evolve(const StockItem&, const StockEvent& e) {
  // Events carry the state after them; delta is kept for views that sum.
  return StockItem{e.on_hand, e.reserved};
}

void InventoryDomain::AppendEventData(const StockEvent& e, std::string* json) {
  // The fields in name order, as the JSON library writes an object: the
  // same bytes as before events were typed (InventoryDecider's
  // TypedEventsAreWrittenAsTheJsonLibraryWritesThem).
  json->append("{\"delta\":");
  AppendInteger(e.delta, json);
  if (e.from_reservation)
    json->append(*e.from_reservation ? ",\"from_reservation\":true" : ",\"from_reservation\":false");
  json->append(",\"on_hand\":");
  AppendInteger(e.on_hand, json);
  json->append(",\"qty\":");
  AppendInteger(e.qty, json);
  json->append(",\"reserved\":");
  AppendInteger(e.reserved, json);
  json->append(",\"sku\":");
  AppendJsonText(e.sku, json);
  json->append(",\"store\":");
  AppendJsonText(e.store, json);
  json->push_back('}');
}

Result<StockEvent> InventoryDomain::DecodeEventData(const Event& event) {
  const nlohmann::json& d = event.data;
  StockEvent e;
  FRESHET_RETURN_IF_ERROR(RequireEventString(d, "store", &e.store));
  FRESHET_RETURN_IF_ERROR(RequireEventString(d, "sku", &e.sku));
  FRESHET_RETURN_IF_ERROR(RequireEventInteger(d, "on_hand", &e.on_hand));
  FRESHET_RETURN_IF_ERROR(RequireEventInteger(d, "reserved", &e.reserved));
  // Not needed to rebuild the state; read when they are there.
  if (auto it = d.find("qty"); it != d.end() && it->is_number_integer()) e.qty = it->get<int64_t>();
  if (auto it = d.find("delta"); it != d.end() && it->is_number_integer()) e.delta = it->get<int64_t>();
  if (auto it = d.find("from_reservation"); it != d.end() && it->is_boolean())
    e.from_reservation = it->get<bool>();
  return e;
}

nlohmann::json InventoryDomain::EntityToJson(const StockItem& item) {
  return {{"on_hand", item.on_hand}, {"reserved", item.reserved}};
}

std::string InventoryDomain::EntityKeyFromPath(const std::string& store, const std::string& sku) {
  // One allocation: every command builds this key twice (decide, stage).
  std::string key;
  key.reserve(store.size() + 1 + sku.size());
  key.append(store).push_back('\x1f');
  key.append(sku);
  return key;
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
