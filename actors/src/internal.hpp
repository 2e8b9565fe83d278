#pragma once

#include "kith/actors/node.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace kith::actors::detail {

/// A stateful actor whose behavior is one object shared by every actor of
/// its kind instead of one heap object per actor (about 1.1 kB for a peer
/// actor's 17 handlers; peer, topic and key actors are counted per
/// relationship and per key, docs/simulation.md). The shared handlers
/// capture nothing and find the actor they run for with current(), which
/// holds the actor whose message this thread is handling: every handler
/// and response handler runs inside consume(). Use current() only in
/// handlers, never in functions run from elsewhere.
template <class State, class Base>
class shared_behavior_actor : public caf::stateful_actor<State, Base> {
public:
  using super = caf::stateful_actor<State, Base>;
  using super::super;

  caf::invoke_message_result consume(caf::mailbox_element& x) override {
    struct guard { // restores the outer actor, on a throw too
      shared_behavior_actor* outer;
      ~guard() { current_ = outer; }
    } g{current_};
    current_ = this;
    return super::consume(x);
  }

  [[nodiscard]] static shared_behavior_actor* current() noexcept {
    return current_;
  }

private:
  static inline thread_local shared_behavior_actor* current_ = nullptr;
};

/// Spawns the actor of a held topic.
[[nodiscard]] topic_actor spawn_topic(caf::actor_system& sys, std::shared_ptr<node_env> env,
                                      std::string topic, node_actor node);
/// Spawns the actor of one active key of `topic` (the topic actor's
/// only; docs/architecture.md, "Key actors"). It loads the key's state
/// from the store, serves it, and asks `topic_handle` to stop it after
/// env->settings.key_idle without requests.
[[nodiscard]] key_actor spawn_key(caf::actor_system& sys, std::shared_ptr<node_env> env,
                                  std::string topic, std::string key, topic_actor topic_handle);
/// The committed state of one key, read from the store (error set when
/// the read fails).
[[nodiscard]] key_state read_key_state(const node_env& env, const std::string& topic,
                                       const std::string& key);

/// Spawns the actor of a remote identity. `followed` peers dial `address`
/// (when not empty) and redial with backoff.
[[nodiscard]] peer_actor spawn_peer(caf::actor_system& sys, std::shared_ptr<node_env> env,
                                    protocol::public_key pk, bool followed, std::string address,
                                    node_actor node);

/// Resumption (docs/secure-channel.md): a channel about to start offers
/// the newest ticket for the peer it dials (initiator) or looks up the
/// tickets dialling peers name (responder); once up, it counts its
/// handshake. The peer actor keeps the channel's ticket once the peer's
/// hello says it keeps tickets too.
void offer_ticket(const node_env& env, protocol::channel& ch, const protocol::public_key& peer,
                  std::uint64_t now_ms);
void accept_tickets(const node_env& env, protocol::channel& ch, std::uint64_t now_ms);
void count_handshake(const node_env& env, const protocol::channel& ch);

/// Spawns the node's relays actor (sessions with env->relays).
[[nodiscard]] relays_actor spawn_relays(caf::actor_system& sys, std::shared_ptr<node_env> env,
                                        node_actor node);

/// The delay before redial number `failures` (1, 2, ...): doubling from
/// settings.backoff_min up to backoff_max, drawn in [base/2, base] so that
/// peers that lost a relay together do not come back in lock step.
[[nodiscard]] std::uint64_t backoff_ms(const node_env& env, std::uint32_t failures);

/// How long a connection to a co-follower no longer pulled from is kept
/// for the author's next absence (lingering). As long as the co-follower
/// keeps us a member of the feed (co_follower_retire_after): past that it
/// has retired us, and pulling again costs a full resync whether or not
/// the connection stayed, so the connection would save only a (resumed)
/// handshake while its keepalives, actors and channel state cost all along.
inline std::uint64_t linger_ms(const node_env& env) {
  const auto& s = env.settings;
  if (s.co_follower_linger)
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.co_follower_linger->count()));
  const auto period = s.co_follower_retire_after.count() > 0 ? s.co_follower_retire_after : s.retire_after;
  return period.count() > 0 ? static_cast<std::uint64_t>(period.count())
                            : std::numeric_limits<std::uint64_t>::max() / 2;
}

/// Answers an aggregator query from the store: each matching status as a
/// document with the proofs that let the asker verify it alone
/// (store::prove_prefix), or tag counts for `trending`. Bounded by the
/// query's limit (at most 100), the wire's item limit and a byte budget.
[[nodiscard]] protocol::query_result_msg answer_query(const node_env& env,
                                                      const protocol::query_msg& q);
/// The posts of an aggregator's answer whose items verify
/// (protocol::verify_standalone), as documents marked {"via": source,
/// "verified": true}; each refused item adds a reason to `refusals`.
[[nodiscard]] nlohmann::json verified_posts(const protocol::query_result_msg& r,
                                            const std::string& source,
                                            std::vector<std::string>& refusals);

/// An api_result holding a JSON body.
[[nodiscard]] api_result json_result(int status, const nlohmann::json& body);
[[nodiscard]] api_result error_result(int status, const std::string& code, const std::string& msg);
/// Maps a storage error to an API error.
[[nodiscard]] api_result storage_error(const storage::error& e);

} // namespace kith::actors::detail
