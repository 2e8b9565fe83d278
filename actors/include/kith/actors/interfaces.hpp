#pragma once

// Every atom, message type and typed actor interface of the actor layer, in
// one place (docs/architecture.md describes who owns what).
//
//   node actor (supervisor)  -- one per node: peers, topics, inbound
//                               handshakes, the local API's operations
//   peer actor               -- one per remote identity: its connection,
//                               channel, backoff, subscriptions, sync rounds
//   topic actor              -- one per topic: the single writer of that
//                               topic in the store; pushes fresh writes
//   transport                -- bytes to and from the network: the Asio
//                               bridge in the daemon, a simulated network in
//                               tests and the simulator
//
// Actors never read the wall clock or the OS random source: time comes from
// CAF's clock (virtual under the testing scheduler), randomness from the
// node's seeded entropy, wall-clock timestamps of writes from the caller.

#include "kith/protocol/bundle.hpp"
#include "kith/protocol/channel.hpp"
#include "kith/protocol/messages.hpp"

#include <caf/atom.hpp>
#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kith::actors {

/// A transport's name for one connection (unique per transport).
using conn_id = std::uint64_t;

// --- atoms -------------------------------------------------------------------
using dial_atom = caf::atom_constant<caf::atom("dial")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using opened_atom = caf::atom_constant<caf::atom("opened")>;
using bytes_atom = caf::atom_constant<caf::atom("bytes")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using dialfail_atom = caf::atom_constant<caf::atom("dialfail")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using push_atom = caf::atom_constant<caf::atom("push")>;
using follow_atom = caf::atom_constant<caf::atom("follow")>;
using unfollow_atom = caf::atom_constant<caf::atom("unfollow")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using api_atom = caf::atom_constant<caf::atom("api")>;
using doc_atom = caf::atom_constant<caf::atom("doc")>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;
using request_atom = caf::atom_constant<caf::atom("request")>;
using apply_atom = caf::atom_constant<caf::atom("apply")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using mark_atom = caf::atom_constant<caf::atom("mark")>;
using topic_atom = caf::atom_constant<caf::atom("topic")>;
using peerstate_atom = caf::atom_constant<caf::atom("peerstate")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using page_atom = caf::atom_constant<caf::atom("page")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using bundle_atom = caf::atom_constant<caf::atom("bundle")>;
using pull_atom = caf::atom_constant<caf::atom("pull")>;
using unpull_atom = caf::atom_constant<caf::atom("unpull")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
using found_atom = caf::atom_constant<caf::atom("found")>;
using absent_atom = caf::atom_constant<caf::atom("absent")>;
using meet_atom = caf::atom_constant<caf::atom("meet")>;
using left_atom = caf::atom_constant<caf::atom("left")>;
using unmeet_atom = caf::atom_constant<caf::atom("unmeet")>;
using pause_atom = caf::atom_constant<caf::atom("pause")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using consumed_atom = caf::atom_constant<caf::atom("consumed")>;
using written_atom = caf::atom_constant<caf::atom("written")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using sleep_atom = caf::atom_constant<caf::atom("sleep")>;

// --- message types (local only: never serialized by CAF) -----------------------

/// An established channel handed from the node actor (which ran the inbound
/// handshake) to the peer actor of the identity it proved.
struct channel_handoff {
  std::shared_ptr<protocol::channel> ch;
  std::vector<std::string> frames; // decrypted before the handoff
  std::string address;
};

/// What the node keeps of a peer actor put to sleep (docs/architecture.md,
/// "Idle peers sleep"): an established inbound connection that neither
/// pulls nor serves anything, kept open by keepalives the node answers
/// itself. A new peer actor takes it up again (adopt_atom) at the first
/// frame that is not a keepalive, or when the node needs the peer.
struct peer_sleep {
  std::shared_ptr<protocol::channel> ch; // null in an answer: staying awake
  protocol::public_key pk;
  causality::replica_id rid{}; // from the peer's hello
  std::string address;
  std::uint64_t last_rx_ms = 0;
  std::uint64_t last_tx_ms = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t entries_received = 0;
  std::uint32_t read_pauses = 0;
  bool outbound = false; // dialled by us (through the node: dial_atom)
  // A co-follower's connection kept for its author's next absence: closed
  // at this time unless in use again (0: not lingering).
  std::uint64_t linger_until_ms = 0;
};

/// Connection ids of relayed connections (circuits) have this bit set, so
/// a connection's owner knows which transport carries it.
inline constexpr conn_id circuit_conn_bit = conn_id{1} << 63;

/// Address of a relayed connection to an identity: "relay/<id>".
inline constexpr std::string_view circuit_address_prefix = "relay/";

/// What the relays actor reports per relay.
struct relay_info {
  std::string address;
  std::string id;    // the relay's identity once known
  std::string state; // "connected", "connecting", "backoff"
  bool announced = false;
  std::uint64_t lookups = 0;
  std::uint64_t circuits_open = 0;
  /// Rendezvous topics joined at this relay, and of those the ones whose
  /// joined/left events we hear (watched).
  std::uint64_t topics_joined = 0;
  std::uint64_t topics_watched = 0;
  std::string last_error;
};

/// The outcome of an operation of the local API: an HTTP status, a JSON
/// body as text, or bytes (bundle export).
struct api_result {
  int status = 200;
  std::string json;
  bool binary = false;
};

/// The outcome of applying received data in a topic actor.
struct apply_result {
  bool ok = true;
  protocol::error_code code = protocol::error_code::protocol;
  std::string reason;
  std::size_t keys_changed = 0;
  std::size_t new_dots = 0;
};

/// What a peer actor reports for `kith peers` / GET /v1/peers.
struct peer_info {
  std::string id;
  bool followed = false;
  std::string state; // "connected", "connecting", "backoff", "idle"
  std::string address;
  std::vector<std::string> pulling;  // topics pulled from this peer
  std::vector<std::string> serving;  // topics this peer pulls from us
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t entries_received = 0;
  std::uint64_t read_pauses = 0; // times reading stopped for unapplied data
  /// The current connection's handshake: "full", "resumed" (a ticket, no
  /// signatures), or empty while not connected.
  std::string handshake;
  std::string last_error;
  /// No actor: the node holds the connection (peer_sleep).
  bool asleep = false;
};

/// One page of a full-state resync, as the topic actor hands it out.
struct resync_page {
  protocol::signed_reply reply;
  std::string next_after;
  bool complete = true;
  /// Dots of keys left out because the asker has them (store::page).
  causality::node_clock held;
};

/// What a topic actor reports.
struct topic_info {
  std::string id;
  std::string name;
  std::uint64_t dots = 0; // writes the clock covers
  std::size_t subscribers = 0;
  std::size_t members = 0;
  std::size_t kept_headers = 0;
  std::size_t key_actors = 0;         // key actors alive now (active keys)
  std::uint64_t key_activations = 0;  // key actors spawned since the topic actor started
};

} // namespace kith::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::channel_handoff)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::peer_sleep)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::api_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::apply_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::peer_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::topic_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::resync_page)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::protocol::signed_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const kith::protocol::bundle>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::causality::sync_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::causality::node_clock)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::causality::replica_id)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kith::causality::dot>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::protocol::public_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kith::actors::peer_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kith::actors::topic_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kith::actors::relay_info>)

// =============================================================================
// Key actors: one per ACTIVE subject-predicate key of a topic (issue 4).
// Spawned by the key's topic actor on first use, stopped after
// sync_settings::key_idle without requests; the topic actor stays the single
// committer (docs/architecture.md, "Key actors").
// =============================================================================

#include "kith/storage/store.hpp"

namespace kith::actors {

using kget_atom = caf::atom_constant<caf::atom("kget")>;       // read one key
using kwrite_atom = caf::atom_constant<caf::atom("kwrite")>;   // local single-key write
using kapply_atom = caf::atom_constant<caf::atom("kapply")>;   // one-key merge
using kcommit_atom = caf::atom_constant<caf::atom("kcommit")>; // key actor -> topic: commit
using kupdate_atom = caf::atom_constant<caf::atom("kupdate")>; // topic -> key actor: new state
using kwatch_atom = caf::atom_constant<caf::atom("kwatch")>;
using kunwatch_atom = caf::atom_constant<caf::atom("kunwatch")>;
using kidle_atom = caf::atom_constant<caf::atom("kidle")>;     // key actor -> topic: may I stop?
using kchange_atom = caf::atom_constant<caf::atom("kchange")>; // key actor -> watchers
using rwatch_atom = caf::atom_constant<caf::atom("rwatch")>;   // node -> relays: rendezvous events on/off
using due_atom = caf::atom_constant<caf::atom("due")>;         // node -> itself: a gather's deadline

/// One key as committed: its live siblings and the context a writer passes
/// back to replace them (storage::key_view). A copy, never shared: each
/// key actor owns its own. `error` is set (and the rest empty) when the
/// key could not be read or is malformed.
struct key_state {
  std::string topic;
  std::string key; // "<subject>\0<predicate>"
  storage::key_view view;
  std::string error;
};

/// What the topic actor answers a key actor's commit: the outcome and the
/// key's state right after the commit (read under the single writer).
struct key_commit {
  api_result write;   // for a local write
  apply_result merge; // for a merge
  key_state state;
};

} // namespace kith::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::key_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::actors::key_commit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::storage::write_op)

namespace kith::actors {

/// The actor of one active key. Every request reaches it through its
/// topic actor (which counts them, so that an idle stop never races a
/// request in flight); watchers receive (kchange_atom, key_state) untyped.
using key_actor = caf::typed_actor<
    caf::replies_to<kget_atom>::with<key_state>,
    // A local write of this key: JSON value text (ignored for a delete),
    // delete?, wall-clock ms of the write. Replaces every sibling the key
    // actor holds (its context), like "put" without a context.
    caf::replies_to<kwrite_atom, std::string, bool, std::uint64_t>::with<api_result>,
    // Received signed data of this key only, and the peer actor it came from.
    caf::replies_to<kapply_atom, protocol::signed_reply, caf::actor>::with<apply_result>,
    caf::reacts_to<kwatch_atom, caf::actor>,
    caf::reacts_to<kunwatch_atom, caf::actor>,
    // The key's state after a commit the key actor did not ask for.
    caf::reacts_to<kupdate_atom, key_state>,
    // Idle check (a delayed message to itself) / the topic's stop.
    caf::reacts_to<tick_atom>,
    caf::reacts_to<stop_atom>>;

} // namespace kith::actors

// ============================ end of key actors ==============================

namespace kith::actors {

/// The transport: connections by address. Events go to the owner of a
/// connection as untyped messages:
///   (opened_atom, conn_id, address, bool outbound, uint64 tag)
///   (bytes_atom, conn_id, std::string)
///   (closed_atom, conn_id, std::string reason)
///   (dialfail_atom, uint64 tag, std::string reason)
/// Events of an outbound connection go to the actor that dialled it;
/// events of inbound connections go to the node actor, which runs the
/// handshake and then forwards the bytes to the peer actor of the proved
/// identity (one path per connection, so bytes stay in order).
/// pause/resume: the owner stops and restarts reads of a connection (read
/// backpressure: a peer that sends faster than its data is applied waits
/// in its own kernel buffers, not in our memory).
/// consumed: every actor that receives (bytes_atom, c, b) sends
/// (consumed_atom, c, b.size()) to the connection's transport once it has
/// handled them. The transport keeps at most a fixed number of bytes per
/// connection delivered but not yet handled, so a fast sender cannot fill
/// a slow actor's mailbox while a pause is on its way. An owner that never
/// acknowledges stalls its connection's reads, never anything else.
/// A transport may also report to the owner (written_atom, conn_id, n):
/// n more bytes of the connection reached the kernel (see
/// node_env::transport_reports_writes).
using transport_actor = caf::typed_actor<
    caf::reacts_to<dial_atom, std::string, caf::actor, std::uint64_t>,
    caf::reacts_to<send_atom, conn_id, std::string>,
    caf::reacts_to<close_atom, conn_id, std::string>,
    // reset = true: abort (a TCP reset) rather than close gracefully, for a
    // peer that does not read (the kernel drops what is queued to it).
    caf::reacts_to<close_atom, conn_id, std::string, bool>,
    caf::reacts_to<pause_atom, conn_id>,
    caf::reacts_to<resume_atom, conn_id>,
    caf::reacts_to<consumed_atom, conn_id, std::uint64_t>>;

/// One topic: the single writer of its rows in the store.
using topic_actor = caf::typed_actor<
    // A local document operation ("put", "del", "post") with JSON params;
    // the wall-clock time of the write comes from the caller.
    caf::replies_to<doc_atom, std::string, std::string, std::uint64_t>::with<api_result>,
    // Anti-entropy: answer a peer's clock / make our own request.
    caf::replies_to<answer_atom, causality::sync_request>::with<protocol::signed_reply>,
    caf::replies_to<request_atom>::with<causality::sync_request>,
    // Received signed data from a peer actor (verified here).
    caf::replies_to<apply_atom, protocol::signed_reply, caf::actor>::with<apply_result>,
    // A peer actor wants pushes of fresh data; its replica becomes a member.
    // True if it was not one before (it must then do a full resync).
    caf::replies_to<subscribe_atom, caf::actor, causality::replica_id>::with<bool>,
    caf::reacts_to<unsub_atom, caf::actor>,
    // A member's report of its clock.
    caf::reacts_to<mark_atom, causality::replica_id, causality::node_clock>,
    // One page of a full-state resync (after key, max keys, the asker's
    // clock: keys it covers are named by their dots, not sent).
    caf::replies_to<page_atom, std::string, std::uint32_t, causality::node_clock>::with<resync_page>,
    // End of a complete resync: vouch the sender's own clock entry, and
    // drop the sender's writes it covers that the resync did not carry
    // (every dot it carried or named as held is in the second clock).
    caf::reacts_to<join_atom, causality::replica_id, causality::node_clock,
                   causality::node_clock>,
    // Export the topic as a signed bundle (binary result) / import a
    // checked bundle of this topic (entries verified as they are applied).
    caf::replies_to<bundle_atom>::with<api_result>,
    caf::replies_to<bundle_atom, std::shared_ptr<const protocol::bundle>>::with<api_result>,
    caf::replies_to<status_atom>::with<topic_info>,
    // --- key actors (block above): requests about one key ("<subject>\0<predicate>"),
    // served by the key's actor, spawned on first use ...
    caf::replies_to<kget_atom, std::string>::with<key_state>,
    caf::replies_to<kwrite_atom, std::string, std::string, bool, std::uint64_t>::with<api_result>,
    caf::replies_to<kapply_atom, protocol::signed_reply, caf::actor>::with<apply_result>,
    caf::reacts_to<kwatch_atom, std::string, caf::actor>,
    caf::reacts_to<kunwatch_atom, std::string, caf::actor>,
    // ... and from key actors only: commit a single-key write (the op the
    // key actor built, time) or a one-key merge (and the peer actor it came
    // from); ask to stop (key, requests seen).
    caf::replies_to<kcommit_atom, storage::write_op, std::uint64_t>::with<key_commit>,
    caf::replies_to<kcommit_atom, protocol::signed_reply, caf::actor>::with<key_commit>,
    caf::reacts_to<kidle_atom, std::string, std::uint64_t>,
    // Its own timer (the grid point it was set for): retire members silent
    // for sync_settings::retire_after.
    caf::reacts_to<tick_atom, std::uint64_t>>;

} // namespace kith::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::protocol::topic_descriptor)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::protocol::query_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kith::protocol::query_result_msg)

namespace kith::actors {

/// One remote identity: its connection (dialled or adopted), secure
/// channel, backoff, the topics pulled from it and served to it, and the
/// anti-entropy rounds with it.
using peer_actor = caf::typed_actor<
    caf::reacts_to<opened_atom, conn_id, std::string, bool, std::uint64_t>,
    caf::reacts_to<bytes_atom, conn_id, std::string>,
    caf::reacts_to<written_atom, conn_id, std::uint64_t>,
    caf::reacts_to<closed_atom, conn_id, std::string>,
    caf::reacts_to<dialfail_atom, std::uint64_t, std::string>,
    caf::reacts_to<adopt_atom, conn_id, channel_handoff>,
    // Wake: take up a connection the node kept while no actor was needed,
    // then handle these frames (decrypted by the node: the first that was
    // not a keepalive, and those after it).
    caf::reacts_to<adopt_atom, conn_id, peer_sleep, std::vector<std::string>>,
    // The node asks an idle actor (one that said so with sleep_atom) to go
    // to sleep: it answers with its connection's state and ends, or with
    // an empty one (ch null) if it has work again.
    caf::replies_to<sleep_atom>::with<peer_sleep>,
    // Fresh data of a topic for the peer (if it subscribed to the topic).
    caf::reacts_to<push_atom, protocol::signed_reply>,
    // Start following (dial this address; may be empty) or stop.
    caf::reacts_to<follow_atom, std::string>,
    caf::reacts_to<unfollow_atom>,
    // Also pull this (shared) topic from the peer, or stop pulling it (the
    // actor ends if nothing else keeps it: no follow, no shared topic, no
    // subscription of the peer's, no other pull).
    caf::reacts_to<pull_atom, std::string>,
    caf::reacts_to<unpull_atom, std::string>,
    // Addresses of the peer found through relays (its signed record).
    caf::reacts_to<found_atom, std::vector<std::string>>,
    // A relay has no record of the peer and will send one (found_atom)
    // when the peer announces itself: no need to ask again soon, and no
    // relayed connection can reach it meanwhile. With false: that watch
    // was lost with the relay session; ask again.
    caf::reacts_to<absent_atom, bool>,
    // The peer writes a shared topic we hold (met at a relay's rendezvous):
    // keep a connection to it as if followed, without pulling its feed.
    caf::reacts_to<meet_atom>,
    // No longer keep it connected for that (a co-follower no longer
    // pulled from): with `linger`, the present connection stays until it
    // closes but is not redialled; without, the actor ends at once if
    // nothing else keeps it.
    caf::reacts_to<unmeet_atom, bool>,
    // Ask the peer (an aggregator) a query over the connection; the answer
    // is delivered as it came (unverified: the asker verifies each item),
    // or with `refused` set when not connected or timed out.
    caf::replies_to<query_atom, protocol::query_msg>::with<protocol::query_result_msg>,
    // Housekeeping, with the time it was set for (a tick superseded by an
    // earlier one is ignored).
    caf::reacts_to<tick_atom, std::uint64_t>,
    caf::replies_to<status_atom>::with<peer_info>>;

/// The node's relays: one session per configured relay (dialled through
/// the node's transport), the node's signed record announced and renewed,
/// lookups of identities, topic rendezvous, and relayed connections
/// (circuits). For peer actors it is also a transport: dial
/// "relay/<id>", send and close on circuit connection ids.
using relays_actor = caf::typed_actor<
    caf::reacts_to<opened_atom, conn_id, std::string, bool, std::uint64_t>,
    caf::reacts_to<bytes_atom, conn_id, std::string>,
    caf::reacts_to<written_atom, conn_id, std::uint64_t>,
    caf::reacts_to<closed_atom, conn_id, std::string>,
    caf::reacts_to<dialfail_atom, std::uint64_t, std::string>,
    caf::reacts_to<dial_atom, std::string, caf::actor, std::uint64_t>,
    caf::reacts_to<send_atom, conn_id, std::string>,
    caf::reacts_to<close_atom, conn_id, std::string>,
    caf::reacts_to<close_atom, conn_id, std::string, bool>,
    caf::reacts_to<pause_atom, conn_id>,
    caf::reacts_to<resume_atom, conn_id>,
    caf::reacts_to<consumed_atom, conn_id, std::uint64_t>,
    // Look an identity up on every relay; the addresses of its verified
    // record go to `reply_to` as (found_atom, std::vector<std::string>).
    caf::reacts_to<lookup_atom, protocol::public_key, caf::actor>,
    // Join (and watch) a rendezvous topic on every relay; members that
    // join go to the node as (meet_atom, topic, public_key), members that
    // leave as (left_atom, topic, public_key).
    caf::reacts_to<meet_atom, std::string>,
    // Stop (false) or start again (true) watching a joined rendezvous
    // topic: while not watched, the relays send no joined/left events for
    // it (the node stays a member); watching again lists its members anew.
    caf::reacts_to<rwatch_atom, std::string, bool>,
    // This node's own dial addresses, to announce (replaces the last).
    caf::reacts_to<found_atom, std::vector<std::string>>,
    caf::reacts_to<tick_atom>,
    caf::replies_to<status_atom>::with<std::vector<relay_info>>>;

/// The node's supervisor: owns the peer and topic actors, runs inbound
/// handshakes until an identity is proved, and runs the local API's
/// operations.
using node_actor = caf::typed_actor<
    caf::reacts_to<opened_atom, conn_id, std::string, bool, std::uint64_t>,
    caf::reacts_to<bytes_atom, conn_id, std::string>,
    caf::reacts_to<written_atom, conn_id, std::uint64_t>,
    caf::reacts_to<closed_atom, conn_id, std::string>,
    caf::reacts_to<dialfail_atom, std::uint64_t, std::string>,
    // op, JSON params, raw body, wall-clock ms of the call.
    caf::replies_to<api_atom, std::string, std::string, std::string, std::uint64_t>::with<api_result>,
    // The actor of a held topic (invalid handle if not held) ...
    caf::replies_to<topic_atom, std::string>::with<topic_actor>,
    // ... or of a topic offered by a peer (registered if its descriptor checks).
    caf::replies_to<topic_atom, protocol::topic_descriptor>::with<topic_actor>,
    // A peer actor's secure channel was established (true) or lost
    // (false): the node's co-follower checks read this instead of asking
    // every followed peer's actor every few seconds.
    caf::reacts_to<peerstate_atom, protocol::public_key, bool>,
    // An identity joined a rendezvous topic at a relay.
    caf::reacts_to<meet_atom, std::string, protocol::public_key>,
    // ... or left it (its connection to that relay closed).
    caf::reacts_to<left_atom, std::string, protocol::public_key>,
    // This node's own dial addresses (known once the daemon listens), for
    // its relay record.
    caf::reacts_to<found_atom, std::vector<std::string>>,
    // A peer actor on this inbound connection has been idle for
    // sync_settings::peer_sleep_after: the node may put it to sleep.
    caf::reacts_to<sleep_atom, conn_id>,
    // A peer actor is about to dial with the node as the connection's
    // owner (tag): the node passes that connection's events on to it.
    caf::reacts_to<dial_atom, std::uint64_t>,
    // The deadline of a status gather (GET /v1/peers, /v1/topics): it
    // answers with the replies that came.
    caf::reacts_to<due_atom, std::uint64_t>,
    caf::reacts_to<tick_atom>,
    caf::reacts_to<stop_atom>>;

} // namespace kith::actors
