// The example domain: stock per (store, SKU), partitioned by store.
//
// Commands (JSON): {"type": "receive"|"reserve"|"release"|"sell"|"adjust",
//                   "store": "...", "sku": "...", "qty": N,
//                   "from_reservation": bool (sell only), "counted": N (adjust only),
//                   "id": "optional idempotency key"}
// Invariants: on_hand >= 0 and reserved <= on_hand, always.
// Events: StockReceived, StockReserved, ReservationReleased, StockSold,
// StockAdjusted; each carries {store, sku, qty, delta, on_hand, reserved}
// where delta is the change in on_hand and on_hand/reserved the values after.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "writer/decider.h"

namespace freshet {

struct StockItem {
  int64_t on_hand = 0;
  int64_t reserved = 0;
};

struct InventoryDomain {
  using Entity = StockItem;
  static Result<Command> ParseCommand(const nlohmann::json& body);
  static Result<std::vector<Event>> Decide(const StateView<StockItem>& state, const Command& command);
  static std::string EntityKeyOf(const Event& event);
  static StockItem Evolve(const StockItem& before, const Event& event);
  static nlohmann::json EntityToJson(const StockItem& item);
  static std::string EntityKeyFromPath(const std::string& store, const std::string& sku);
  static nlohmann::json EntityToSnapshot(const StockItem& item);
  static Result<StockItem> EntityFromSnapshot(const nlohmann::json& j);
};

std::unique_ptr<Domain> MakeInventoryDomain();

}  // namespace freshet
