// The decider API: how a domain turns commands into events and events into
// state. A domain is plain C++ with no Kafka in sight:
//
//   struct MyDomain {
//     using Entity = ...;                                   // copyable, default = "absent"
//     static Result<Command> ParseCommand(const nlohmann::json& body);
//     static Result<std::vector<Event>> Decide(const StateView<Entity>& state, const Command& c);
//     static std::string EntityKeyOf(const Event& e);       // which entity an event changes
//     static Entity Evolve(const Entity& before, const Event& e);
//     static nlohmann::json EntityToJson(const Entity& e);
//     static std::string EntityKeyFromPath(const std::string& partition_key, const std::string& entity);
//     // Optional: with these two the writer snapshots the partition's state
//     // and a new owner loads it instead of replaying all history.
//     static nlohmann::json EntityToSnapshot(const Entity& e);
//     static Result<Entity> EntityFromSnapshot(const nlohmann::json& j);
//   };
//
// Decide returns Status::Refused("reason") to refuse, or InvalidArgument for
// a command that is malformed for this domain.
//
// A domain may use its own structs instead of JSON for its commands, its
// events or both, which costs the writer much less per command (JSON only
// at the edges: the HTTP body, the Kafka record). Each is optional.
//
// Typed commands: ParseCommand stores the fields in Command::fields, and
// Decide takes them (a command whose `fields` hold no CommandData is
// refused as invalid):
//
//     using CommandData = ...;
//     static Result<std::vector<...>> Decide(const StateView<Entity>& state,
//                                            const Command& c, const CommandData& fields);
//
// Typed events: Decide returns std::vector<TypedEvent<EventData>>, and
//
//     using EventData = ...;                         // an event's "data"
//     static std::string EntityKeyOf(const EventData& e);
//     static Entity Evolve(const Entity& before, const EventData& e);
//     static void AppendEventData(const EventData& e, std::string* json);
//     static Result<EventData> DecodeEventData(const Event& e);  // read back
//
// AppendEventData writes "data" as a JSON object; DecodeEventData reads it
// from an event read back from the log (recovery, a standby). The writer
// gives each typed event its command's id and the time.
//
// OverlayState<MyDomain> gives the writer a DomainState with pending
// changes kept apart from committed ones, so a refused command or an
// aborted transaction changes nothing.
#pragma once

#include <any>
#include <concepts>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/envelope.h"
#include "core/status.h"

namespace freshet {

struct Command {
  std::string type;
  std::string partition_key;  // decides the Kafka partition (a store id, an account id)
  std::string id;             // idempotency key; empty when the client gave none
  nlohmann::json data;        // the command's fields, as sent (a JSON domain's)
  std::any fields;            // or a typed domain's CommandData, as its ParseCommand made them
};

// An event a typed domain decided: its type and its data.
template <typename Data>
struct TypedEvent {
  std::string_view type;  // a string literal, e.g. "StockSold"
  Data data;
};

// What Decide returns for a command that makes one event. (A braced
// `std::vector<Event>{e}` would copy the event, its JSON included.)
template <typename E>
std::vector<E> OneEvent(E e) {
  std::vector<E> events;
  events.push_back(std::move(e));
  return events;
}

// A decided event as the writer publishes it.
struct DecidedEvent {
  std::string type;   // the record's type header
  std::string value;  // the record's value: the envelope (core/envelope.h)
};

// An entity the current batch changed, and the committed entry it will
// replace (null for a new one): committing then needs no second lookup.
template <typename Entity>
struct PendingEntity {
  Entity entity;
  Entity* committed = nullptr;
};

// Committed state with the current batch's pending changes on top.
template <typename Entity>
class StateView {
 public:
  StateView(const std::unordered_map<std::string, Entity>& committed,
            const std::unordered_map<std::string, PendingEntity<Entity>>& pending)
      : committed_(committed), pending_(pending) {}
  // nullptr when the entity has never been seen.
  const Entity* Find(const std::string& key) const {
    if (!pending_.empty())
      if (auto it = pending_.find(key); it != pending_.end()) return &it->second.entity;
    if (auto it = committed_.find(key); it != committed_.end()) return &it->second;
    return nullptr;
  }

 private:
  const std::unordered_map<std::string, Entity>& committed_;
  const std::unordered_map<std::string, PendingEntity<Entity>>& pending_;
};

// One partition's state as the writer's partition loop sees it. Owned and
// used by that loop's thread only.
class DomainState {
 public:
  virtual ~DomainState() = default;
  // Decides `command` against committed + pending state; on success the
  // returned events are already applied to the pending overlay.
  virtual Result<std::vector<DecidedEvent>> Decide(const Command& command) = 0;
  virtual void CommitPending() = 0;
  virtual void DropPending() = 0;
  // Applies an event read back from the log (recovery, standby tailing).
  virtual Status ApplyCommitted(const Event& event) = 0;
  // The committed entity as JSON, or null when absent.
  virtual nlohmann::json EntityJson(const std::string& partition_key, const std::string& entity) const = 0;
  virtual size_t entity_count() const = 0;

  // Snapshots. False when the domain cannot save its entities: its
  // partitions are then always recovered by replaying the log.
  virtual bool can_snapshot() const = 0;
  // The committed entities (pending ones are not included), as a JSON array.
  virtual nlohmann::json SaveEntities() const = 0;
  // Replaces the committed state with `entities` (from SaveEntities).
  virtual Status LoadEntities(const nlohmann::json& entities) = 0;
};

// A domain as the writer sees it, without its types.
class Domain {
 public:
  virtual ~Domain() = default;
  virtual std::string name() const = 0;
  virtual Result<Command> ParseCommand(const nlohmann::json& body) const = 0;
  virtual std::unique_ptr<DomainState> NewState() const = 0;
};

template <typename D>
class OverlayState final : public DomainState {
 public:
  using Entity = typename D::Entity;

  static constexpr bool kTypedCommands = requires { typename D::CommandData; };
  static constexpr bool kTypedEvents = requires { typename D::EventData; };

  Result<std::vector<DecidedEvent>> Decide(const Command& command) override {
    auto events = DecideWithDomain(command);
    if (!events.ok()) return events.status();
    std::vector<DecidedEvent> decided;
    decided.reserve(events->size());
    for (auto& e : events.value()) {
      if constexpr (kTypedEvents) {
        Stage(e.data);
        DecidedEvent out{std::string(e.type), {}};
        AppendEventValueHead(e.type, command.id, NowMillis(), &out.value);
        D::AppendEventData(e.data, &out.value);
        out.value.push_back('}');
        decided.push_back(std::move(out));
      } else {
        Stage(e);
        decided.push_back({e.type, EncodeEventValue(e)});
      }
    }
    return decided;
  }

  void CommitPending() override {
    for (auto& [key, pending] : pending_) {
      if (pending.committed)
        *pending.committed = std::move(pending.entity);
      else
        committed_.emplace(key, std::move(pending.entity));
    }
    pending_.clear();
  }

  void DropPending() override { pending_.clear(); }

  Status ApplyCommitted(const Event& event) override {
    if constexpr (kTypedEvents) {
      auto data = D::DecodeEventData(event);
      if (!data.ok()) return data.status().WithContext("event " + event.type);
      return ApplyCommittedData(event.type, *data);
    } else {
      return ApplyCommittedData(event.type, event);
    }
  }

  nlohmann::json EntityJson(const std::string& partition_key, const std::string& entity) const override {
    auto it = committed_.find(D::EntityKeyFromPath(partition_key, entity));
    if (it == committed_.end()) return nullptr;
    return D::EntityToJson(it->second);
  }

  size_t entity_count() const override { return committed_.size(); }

  static constexpr bool kCanSnapshot = requires(const Entity& e, const nlohmann::json& j) {
    { D::EntityToSnapshot(e) } -> std::convertible_to<nlohmann::json>;
    { D::EntityFromSnapshot(j) } -> std::convertible_to<Result<Entity>>;
  };

  bool can_snapshot() const override { return kCanSnapshot; }

  nlohmann::json SaveEntities() const override {
    nlohmann::json out = nlohmann::json::array();
    if constexpr (kCanSnapshot) {
      for (const auto& [key, entity] : committed_) out.push_back({key, D::EntityToSnapshot(entity)});
    }
    return out;
  }

  Status LoadEntities(const nlohmann::json& entities) override {
    if constexpr (kCanSnapshot) {
      std::unordered_map<std::string, Entity> loaded;
      loaded.reserve(entities.size());
      for (const auto& pair : entities) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string())
          return Status::InvalidArgument("snapshot entity is not [key, entity]");
        auto entity = D::EntityFromSnapshot(pair[1]);
        if (!entity.ok()) return entity.status().WithContext("snapshot entity " + pair[0].get<std::string>());
        loaded.emplace(pair[0].get<std::string>(), std::move(entity.value()));
      }
      committed_ = std::move(loaded);
      pending_.clear();
      return Status::Ok();
    } else {
      (void)entities;
      return Status::InvalidArgument("this domain does not load snapshots");
    }
  }

 private:
  auto DecideWithDomain(const Command& command) {
    StateView<Entity> view(committed_, pending_);
    if constexpr (kTypedCommands) {
      using Fields = typename D::CommandData;
      using Events = decltype(D::Decide(view, command, std::declval<const Fields&>()));
      const Fields* fields = std::any_cast<Fields>(&command.fields);
      if (!fields)
        return Events(Status::InvalidArgument("command " + command.type +
                                              ": its fields were not made by this domain's ParseCommand"));
      return D::Decide(view, command, *fields);
    } else {
      return D::Decide(view, command);
    }
  }

  // Applies a decided event (an Event, or a typed domain's EventData) to
  // the pending overlay: one lookup in pending, and in committed only for
  // an entity this batch has not changed yet.
  template <typename E>
  void Stage(const E& e) {
    auto [it, first_change] = pending_.try_emplace(D::EntityKeyOf(e));
    PendingEntity<Entity>& pending = it->second;
    if (first_change) {
      auto committed = committed_.find(it->first);
      // Pointers to an unordered_map's elements outlive rehashing; only
      // LoadEntities replaces them, and it drops pending as well.
      pending.committed = committed == committed_.end() ? nullptr : &committed->second;
      pending.entity = D::Evolve(pending.committed ? *pending.committed : Entity{}, e);
    } else {
      pending.entity = D::Evolve(pending.entity, e);
    }
  }

  template <typename E>
  Status ApplyCommittedData(const std::string& type, const E& e) {
    std::string key = D::EntityKeyOf(e);
    if (key.empty()) return Status::InvalidArgument("event " + type + " names no entity");
    Entity& entity = committed_[key];  // a new one is default-constructed: "absent"
    entity = D::Evolve(entity, e);
    return Status::Ok();
  }

  std::unordered_map<std::string, Entity> committed_;
  std::unordered_map<std::string, PendingEntity<Entity>> pending_;
};

template <typename D>
class DomainAdapter final : public Domain {
 public:
  explicit DomainAdapter(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  Result<Command> ParseCommand(const nlohmann::json& body) const override { return D::ParseCommand(body); }
  std::unique_ptr<DomainState> NewState() const override { return std::make_unique<OverlayState<D>>(); }

 private:
  std::string name_;
};

}  // namespace freshet
