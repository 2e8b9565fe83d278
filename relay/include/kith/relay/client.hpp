#pragma once

// The relay client's sans-I/O core: one connection to one relay, as a
// state machine. The node runs it inside a CAF actor (the actor owns the
// socket); the simulator runs it against relay_core over simulated links.
// Bytes and time in; bytes to send and events out. docs/relay-protocol.md
// specifies the protocol.

#include "kith/protocol/channel.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/relay/messages.hpp"
#include "kith/relay/record.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kith::relay {

struct client_limits {
  /// The channel to the relay. Frames are small (records, pages, 64 KiB
  /// circuit chunks), so the client does not accept the node's 16 MiB.
  protocol::channel_limits channel{128u << 10, 10'000, (128u << 10) + 64};
  wire_limits wire{};
  /// Ping when nothing was sent for this long; 0 = a third of the relay's
  /// idle_timeout_ms (from welcome), none before welcome.
  std::uint64_t ping_interval_ms = 0;
  /// A record is renewed when this share (percent) of its TTL has passed.
  std::uint32_t renew_percent = 66;
};

/// What a request was, for acknowledgements and refusals.
enum class request_kind : std::uint8_t {
  announce,
  lookup,
  join,
  leave,
  members,
  watch,
  unwatch,
  open_circuit,
  accept_circuit,
  refuse_circuit,
  close_circuit,
};
[[nodiscard]] const char* request_kind_name(request_kind k);

// --- events ---------------------------------------------------------------------------

/// The relay accepted the session and says what its limits are.
struct welcomed {
  protocol::public_key relay;
  relay_terms terms;
  std::string observed_ip; // this client's address as the relay saw it
};
/// The relay holds this client's record (first announce or a renewal).
struct announced {
  std::uint64_t req = 0;
  std::uint64_t expiry_ms = 0;
  std::uint64_t seq = 0;
  bool renewal = false; // sent by tick(), not by announce()
};
/// join, leave, watch, unwatch, accept/refuse/close_circuit succeeded.
struct acknowledged {
  std::uint64_t req = 0;
  request_kind kind = request_kind::join;
};
/// A lookup's answer. `record` has been verified: signed by `id`, for `id`,
/// not expired. A relay answer that fails verification is reported as
/// refused{code::bad_record} instead.
struct lookup_result {
  std::uint64_t req = 0;
  protocol::public_key id;
  std::optional<signed_record> record;
  /// No record, and the relay will send it once `id` announces one (the
  /// lookup asked to watch): a `present` event follows then.
  bool watching = false;
};
/// An identity looked up with watch, not found then, announced this
/// record (verified like a lookup's). Once per watch.
struct present {
  signed_record record;
};
/// One page of a topic's members (unauthenticated: the relay's word).
struct members_page {
  std::uint64_t req = 0;
  std::string topic;
  std::vector<protocol::public_key> ids;
  std::string next_cursor; // pass to members() for the next page; empty = done
};
/// A member joined or left a watched topic.
struct topic_event {
  std::string topic;
  protocol::public_key id;
  bool joined = true;
};
/// `from` wants a circuit: answer with accept_circuit or refuse_circuit.
struct circuit_incoming {
  circuit_id circuit = 0;
  protocol::public_key from;
};
/// The target accepted: circuit_send may be used.
struct circuit_opened {
  std::uint64_t req = 0;
  circuit_id circuit = 0;
  protocol::public_key peer;
};
/// Bytes from the other end of a circuit (a piece of its stream).
struct circuit_data {
  circuit_id circuit = 0;
  std::string bytes;
};
/// The circuit ended: the other end closed it (closed_by_peer), a limit cut
/// it (byte_limit, duration_limit) or the other end left (peer_gone).
struct circuit_closed {
  circuit_id circuit = 0;
  relay::code code = code::closed_by_peer;
  std::string reason;
};
/// A request was refused (or its answer did not verify: bad_record).
struct refused {
  std::uint64_t req = 0;
  request_kind kind = request_kind::announce;
  relay::code code = code::bad_request;
  std::string detail;
};
/// The relay is restarting: reconnect after this delay (already spread by
/// the relay; do not add a shorter one).
struct reconnect {
  std::uint64_t after_ms = 0;
};
/// The relay closed the session; the client is closed.
struct goodbye {
  relay::code code = code::shutdown;
  std::string reason;
};

using client_event =
    std::variant<welcomed, announced, acknowledged, lookup_result, members_page, topic_event,
                 circuit_incoming, circuit_opened, circuit_data, circuit_closed, refused,
                 reconnect, goodbye, present>;

/// What one receive() or tick() produced. Send `to_send` on the stream;
/// when `error` is set the client is closed: close the stream and log it.
struct client_output {
  std::string to_send;
  std::vector<client_event> events;
  std::optional<std::string> error;
};

/// A request's id, or why it was not sent (then `req` is 0).
struct request_result {
  std::uint64_t req = 0;
  std::string error;
  explicit operator bool() const { return error.empty(); }
};

enum class client_state : std::uint8_t { handshaking, established, closed };

/// One session with one relay. Not thread-safe; one owner. Deterministic:
/// randomness comes from `seed`, time from the now_ms arguments (unix ms,
/// the same clock records' expiries use).
///
/// Output style: request methods queue their sealed bytes in an outbox;
/// take_to_send() drains it, and receive() and tick() also drain it into
/// their to_send. Requests need an established channel (before that they
/// fail with an error and send nothing).
class relay_client {
public:
  /// `relay_id` pins the relay's identity when known: another identity on
  /// the other end fails the handshake. `seed` seeds this session's
  /// ephemeral key; use a fresh one per session.
  relay_client(const protocol::identity& self, std::optional<protocol::public_key> relay_id,
               const protocol::key_seed& seed, std::uint64_t now_ms, client_limits limits = {});
  ~relay_client();
  relay_client(relay_client&&) noexcept;
  relay_client& operator=(relay_client&&) noexcept;
  relay_client(const relay_client&) = delete;
  relay_client& operator=(const relay_client&) = delete;

  /// Before start(): resume with a ticket the last session with this
  /// relay left (protocol::channel::offer_ticket).
  void offer_ticket(const protocol::resume_ticket& t);
  /// Once welcomed: the ticket for the next session (given once).
  [[nodiscard]] std::optional<protocol::resume_ticket> take_ticket();
  /// The session's handshake was resumed (no signatures).
  [[nodiscard]] bool resumed() const;
  /// The opening bytes of the handshake (call once, first).
  [[nodiscard]] std::string start();
  /// Bytes from the relay, in order, in any chunking.
  [[nodiscard]] client_output receive(std::string_view bytes, std::uint64_t now_ms);
  /// Time passes: handshake timeout, record renewal, keepalive pings.
  [[nodiscard]] client_output tick(std::uint64_t now_ms);
  /// Drains the bytes queued by request methods.
  [[nodiscard]] std::string take_to_send();

  /// Announces a record for this identity at `addresses`, valid for ttl_ms
  /// (clamped to the relay's max_record_ttl_ms once welcomed) and renewed
  /// by tick() until stop_announcing(), a new announce or the session end.
  /// Costs one signature. Answered by `announced` or `refused`.
  [[nodiscard]] request_result announce(std::vector<std::string> addresses, std::uint64_t ttl_ms,
                                        std::uint64_t now_ms);
  /// Stops renewals; the relay drops the record at its expiry.
  void stop_announcing();
  /// Answered by lookup_result (verified) or refused. With `watch`, a
  /// relay that has no record for `id` remembers the ask (lookup_result
  /// says watching) and sends the record when `id` announces one: a
  /// `present` event, instead of the caller asking again and again.
  [[nodiscard]] request_result lookup(const protocol::public_key& id, bool watch = false);
  /// `topic` is opaque, 1 to 64 bytes; pass rendezvous_key(name) to keep
  /// the name from the relay. Answered by acknowledged or refused.
  [[nodiscard]] request_result join(std::string_view topic);
  [[nodiscard]] request_result leave(std::string_view topic);
  /// One page of members after `cursor` (empty = first page); limit 0 =
  /// the relay's page size. Answered by members_page.
  [[nodiscard]] request_result members(std::string_view topic, std::string_view cursor = {},
                                       std::uint32_t limit = 0);
  /// Starts/stops topic_event for the topic. Watch first, then page the
  /// members, so no join between the two is missed.
  [[nodiscard]] request_result watch(std::string_view topic);
  [[nodiscard]] request_result unwatch(std::string_view topic);
  /// Asks for a circuit to `target`; answered by circuit_opened or refused.
  [[nodiscard]] request_result open_circuit(const protocol::public_key& target);
  [[nodiscard]] request_result accept_circuit(circuit_id c);
  [[nodiscard]] request_result refuse_circuit(circuit_id c, std::string_view reason = {});
  /// Queues bytes for the other end of an open circuit, split into frames
  /// of at most the relay's max_circuit_frame_bytes. req is 0.
  [[nodiscard]] request_result circuit_send(circuit_id c, std::string_view bytes);
  /// Closes a circuit; the other end gets circuit_closed{closed_by_peer, reason}.
  [[nodiscard]] request_result close_circuit(circuit_id c, std::string_view reason = {});

  [[nodiscard]] client_state state() const;
  [[nodiscard]] bool established() const { return state() == client_state::established; }
  /// The relay's authenticated identity once established (else the pin).
  [[nodiscard]] std::optional<protocol::public_key> relay_id() const;
  /// The relay's terms once welcomed.
  [[nodiscard]] const std::optional<relay_terms>& terms() const;
  /// Why the client closed, if it did.
  [[nodiscard]] const std::string& close_reason() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace kith::relay
