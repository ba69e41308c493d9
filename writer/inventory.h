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
#include <optional>
#include <string>
#include <vector>

#include "writer/decider.h"

namespace freshet {

struct StockItem {
  int64_t on_hand = 0;
  int64_t reserved = 0;
};

// An inventory command's fields (decided as this struct: decider.h's typed
// domains).
struct InventoryCommand {
  std::string sku;
  int64_t qty = 0;                // receive, reserve, release, sell
  int64_t counted = 0;            // adjust
  bool from_reservation = false;  // sell
};

// Every inventory event's data (decided as this struct: decider.h's typed
// domains; JSON only on the way to Kafka and back).
struct StockEvent {
  std::string store;
  std::string sku;
  int64_t qty = 0;
  int64_t delta = 0;  // the change in on_hand
  int64_t on_hand = 0;
  int64_t reserved = 0;
  std::optional<bool> from_reservation;  // StockSold only
};

struct InventoryDomain {
  using Entity = StockItem;
  using CommandData = InventoryCommand;
  using EventData = StockEvent;
  static Result<Command> ParseCommand(const nlohmann::json& body);
  static Result<std::vector<TypedEvent<StockEvent>>> Decide(const StateView<StockItem>& state,
                                                            const Command& command,
                                                            const InventoryCommand& fields);
  static std::string EntityKeyOf(const StockEvent& event);
  static StockItem Evolve(const StockItem& before, const StockEvent& event);
  static void AppendEventData(const StockEvent& event, std::string* json);
  static Result<StockEvent> DecodeEventData(const Event& event);
  static nlohmann::json EntityToJson(const StockItem& item);
  static std::string EntityKeyFromPath(const std::string& store, const std::string& sku);
  static nlohmann::json EntityToSnapshot(const StockItem& item);
  static Result<StockItem> EntityFromSnapshot(const nlohmann::json& j);
};

std::unique_ptr<Domain> MakeInventoryDomain();

}  // namespace freshet
