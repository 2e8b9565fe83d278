#pragma once

// In-process nodes (and a relay) on CAF's deterministic testing scheduler,
// over a simulated network, in virtual time: the harness of the actor tests.

#include "kith/actors/node.hpp"
#include "kith/actors/relay_host.hpp"
#include "kith/actors/sim_network.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <optional>

namespace kith::actors_test {

using namespace kith::actors;
using nlohmann::json;

struct world {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<sim_network> net = std::make_shared<sim_network>();
  std::uint64_t seed;
  std::vector<std::string> log;
  std::size_t steps = 0; // scheduler jobs run by run_until

  struct node {
    std::string address;
    std::shared_ptr<node_env> env;
    node_actor actor;
  };
  std::deque<node> nodes; // stable references

  explicit world(std::uint64_t s) : seed(s) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~world() {
    for (auto& n : nodes)
      if (n.actor)
        caf::anon_send(n.actor, stop_atom::value);
    for (auto& r : relays)
      caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    sched->run();
  }

  /// A relay on the simulated network (the n-th: address sim:relay, then
  /// sim:relay1, ...); returns "address#relay id" for node_env::relays.
  std::string add_relay(std::uint64_t n = 0) {
    auto id = protocol::identity::from_seed(seed_for(seed, 5000 + 10 * n));
    const std::string address = "sim:relay" + (n == 0 ? std::string() : std::to_string(n));
    relays.push_back(spawn_relay_host(*sys, net->make_transport(*sys, address), id,
                                      seed_for(seed, 5001 + 10 * n)));
    net->listen(address, relays.back());
    return address + "#" + protocol::to_text(id.pub());
  }
  std::vector<caf::actor> relays;
  /// Called on each new node's environment before its actors start (to
  /// change its sync settings).
  std::function<void(node_env&)> configure;

  /// A node with identity number i, its store in memory. With relays it
  /// announces its address there (when it listens) and finds peers there.
  node& add(std::size_t i, std::vector<std::string> use_relays = {}, bool listens = true) {
    auto id = protocol::identity::from_seed(seed_for(seed, i));
    storage::store_options o;
    o.replica_nonce = seed * 100 + i + 1;
    o.sync = false;
    auto st = storage::store::open(storage::make_memory_kv(), id, o);
    REQUIRE(st);
    auto env = std::make_shared<node_env>(id, std::move(st.value()));
    env->rng = std::make_shared<entropy>(seed_for(seed, 1000 + i));
    const std::string address = "sim:" + std::to_string(i);
    env->transport = net->make_transport(*sys, address);
    env->log = [this, address](log_level, const std::string& line) {
      log.push_back(address + " " + line);
    };
    env->relays = std::move(use_relays);
    if (configure)
      configure(*env);
    if (listens && !env->relays.empty())
      env->announce = {address};
    nodes.push_back({address, env, spawn_node(*sys, env)});
    if (listens)
      net->listen(address, caf::actor_cast<caf::actor>(nodes.back().actor));
    return nodes.back();
  }

  /// Runs messages and timers until pred holds or `limit` of virtual time
  /// passes. Returns whether pred held.
  bool run_until(const std::function<bool()>& pred,
                 std::chrono::milliseconds limit = std::chrono::minutes(5)) {
    const auto start = sched->clock().now();
    for (;;) {
      steps += sched->run();
      if (pred())
        return true;
      if (sched->clock().now() - start > limit)
        return false;
      if (!sched->trigger_timeout())
        return false;
    }
  }

  std::chrono::milliseconds elapsed_since(caf::actor_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(sched->clock().now() - t);
  }

  /// Sends a request from a fresh actor and runs until it is answered.
  template <class T, class Dest, class... Ts>
  T ask(const Dest& dest, Ts... xs) {
    auto out = std::make_shared<std::optional<T>>();
    sys->spawn([=](caf::event_based_actor* self, int) { // int: see daemon.cpp
      self->request(dest, caf::infinite, xs...).then([=](const T& r) { *out = r; });
    }, 0);
    run_until([&] { return out->has_value(); });
    INFO("request did not complete; log:\n" << log_text());
    REQUIRE(out->has_value());
    return **out;
  }

  /// Runs one API operation to completion.
  api_result api(node& n, const std::string& op, const json& params = json::object()) {
    auto out = std::make_shared<std::optional<api_result>>();
    auto target = n.actor;
    std::uint64_t t = ++wall_ms;
    sys->spawn([=](caf::event_based_actor* self, int) { // int: see daemon.cpp
      self->request(target, caf::infinite, api_atom::value, op, params.dump(), std::string{}, t)
          .then([=](const api_result& r) { *out = r; });
    }, 0);
    run_until([&] { return out->has_value(); });
    INFO("api " << op << " " << params.dump() << " did not complete; log:\n" << log_text());
    REQUIRE(out->has_value());
    return **out;
  }
  json api_json(node& n, const std::string& op, const json& params = json::object()) {
    auto r = api(n, op, params);
    INFO(op << " -> " << r.status << " " << r.json);
    REQUIRE(r.status == 200);
    return json::parse(r.json);
  }
  std::uint64_t wall_ms = 1'700'000'000'000;

  std::string log_text() const {
    std::string s;
    for (const auto& l : log)
      s += l + "\n";
    return s;
  }

  std::size_t feed_size(node& n, const std::string& author) {
    storage::documents docs(*n.env->store);
    auto f = docs.feed(*protocol::parse_id(author), 1000);
    REQUIRE(f);
    return f->size();
  }
  std::string id_of(node& n) { return protocol::to_text(n.env->self.pub()); }
};

} // namespace kith::actors_test
