#pragma once

// The thin relay's sans-I/O core: the whole relay protocol as a state
// machine. Connections, bytes and time go in; bytes to send and
// connections to close come out. The kith-relay program (relay/program/)
// owns the sockets and feeds this core; the simulator feeds it links.
// docs/relay-protocol.md specifies the protocol.
//
// The relay stores no user data: per connection it keeps the secure
// channel, the client's signed reachability record (until it expires or
// the client leaves), the opaque topic keys it joined or watches and its
// circuits. Everything dies with the connection.

#include "kith/protocol/crypto.hpp"
#include "kith/relay/messages.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kith::relay {

/// The transport's name for one connection. Chosen by the caller, unique
/// among open connections; reusing an id after closed() (or after the core
/// closed it) is allowed.
using conn_id = std::uint64_t;

/// Every cap and rate of the relay, in one place (later read from the
/// relay's TOML config; docs/relay-protocol.md explains each). Defaults
/// suit a small public relay on 2 cores: ~20k registered peers.
struct relay_limits {
  // --- connections ----------------------------------------------------------------
  std::size_t max_connections = 50'000;        // open, handshaking or not
  std::size_t max_registrations = 40'000;      // authenticated identities
  std::size_t max_registrations_per_ip = 16;   // identities behind one address
  std::uint64_t handshake_timeout_ms = 10'000;
  /// Resumption tickets kept for clients (docs/secure-channel.md,
  /// "Resumption"): a client that reconnects within the lifetime skips
  /// both signatures. About 200 bytes each; 0 turns resumption off.
  std::size_t resume_tickets = 65'536;
  std::uint64_t resume_ticket_lifetime_ms = 86'400'000;
  std::uint64_t idle_timeout_ms = 90'000;      // nothing received for this long
  std::size_t max_frame_bytes = 128u << 10;    // channel frame, either way
  // --- request rate (token bucket per connection; circuit data is exempt) ----------
  std::uint32_t request_rate_per_s = 50;
  std::uint32_t request_burst = 200;
  /// Refusals for rate (less one per served request) before goodbye(abuse).
  std::uint32_t max_rate_strikes = 200;
  // --- records -------------------------------------------------------------------
  std::uint64_t max_record_ttl_ms = 3'600'000;
  std::uint64_t max_clock_skew_ms = 60'000;    // tolerance on top of the TTL
  std::size_t max_record_addresses = 16;
  std::size_t max_address_bytes = 256;
  std::size_t max_record_bytes = 2048;         // all addresses together
  // --- topics --------------------------------------------------------------------
  std::size_t max_topic_bytes = 64;
  std::size_t max_topics_per_connection = 64;  // joined
  std::size_t max_watches_per_connection = 64;
  // --- presence (a lookup with watch that found nothing) ---------------------------
  /// Identities one client may wait for at once. Past it, lookups are
  /// answered without a watch and the client asks again later.
  std::size_t max_presence_watches_per_connection = 1024;
  std::size_t max_presence_watches = 1'000'000; // relay-wide
  std::size_t max_members_per_topic = 10'000;
  std::size_t max_topics = 200'000;            // distinct topics relay-wide
  std::uint32_t max_page_size = 100;           // ids per members page
  // --- circuits ------------------------------------------------------------------
  std::size_t max_circuits = 4096;             // pending + open, relay-wide
  std::size_t max_circuits_per_identity = 16;  // pending + open, either end
  std::size_t max_circuits_per_ip = 64;        // pending + open, either end, all identities of an address
  /// Payload bytes per circuit, both directions together. Large enough
  /// for an ordinary catch-up sync (libp2p's 128 KiB is not).
  std::uint64_t circuit_max_bytes = 256ull << 20;
  std::uint64_t circuit_max_duration_ms = 3'600'000;
  std::uint64_t circuit_accept_timeout_ms = 30'000;
  std::size_t max_circuit_frame_bytes = 64u << 10; // payload of one circuit_data
  // --- decoding ------------------------------------------------------------------
  /// Hard caps for the decoder. The core makes them agree with the policy
  /// above (topic bytes lowered to max_topic_bytes; payload and message
  /// size raised to max_circuit_frame_bytes and max_frame_bytes).
  wire_limits wire{};
};

/// Counters (monotonic, *_total in Prometheus) and gauges (current
/// values). Updated by the core as it goes; reading is free.
struct relay_metrics {
  // gauges
  std::uint64_t connections = 0;      // open, handshaking or established
  std::uint64_t registrations = 0;    // established, one per identity
  std::uint64_t records = 0;          // live signed records
  std::uint64_t topics = 0;           // topics with members or watchers
  std::uint64_t memberships = 0;
  std::uint64_t watches = 0;
  std::uint64_t presence_watches = 0; // identities waited for, per client
  std::uint64_t circuits_pending = 0; // asked, not yet accepted
  std::uint64_t circuits_open = 0;
  // counters
  std::uint64_t connections_accepted = 0;
  std::uint64_t handshakes_completed = 0;
  std::uint64_t handshakes_resumed = 0; // of handshakes_completed: with a ticket
  std::uint64_t handshakes_failed = 0;
  std::uint64_t records_expired = 0;
  std::uint64_t circuits_opened = 0;
  std::uint64_t presence_sent = 0;    // present messages for watched identities
  std::uint64_t relayed_bytes = 0;    // circuit payload forwarded
  /// Messages received from clients, by relay_message index.
  std::array<std::uint64_t, std::variant_size_v<relay_message>> requests{};
  /// refused messages sent, by code.
  std::array<std::uint64_t, code_count> rejections{};
  /// Connections ended, by reason (goodbye code, or handshake_failed,
  /// handshake_timeout, transport).
  std::array<std::uint64_t, code_count> closes{};
  /// Circuits ended (pending or open), by reason.
  std::array<std::uint64_t, code_count> circuit_ends{};
};

/// What the transport must do, in order.
struct relay_action {
  enum class kind : std::uint8_t {
    send,  // write `bytes` to `conn`
    close, // flush what was sent to `conn`, then close it; log `reason`
  };
  kind what = kind::send;
  conn_id conn = 0;
  std::string bytes;
  std::string reason; // close only; names no other client's data
};

/// The relay. Not thread-safe: one owner (the relay program's event loop,
/// a test, the simulator). Deterministic: the same calls with the same
/// seed produce the same actions, byte for byte.
///
/// `now_ms` is unix time in ms (records carry unix expiry times) and must
/// not go backwards by much; the simulator passes its simulated clock.
/// After an action of kind close, the core has already forgotten that
/// connection: do not report it back through closed().
///
/// Costs: per idle registered connection well under 2 KB (the channel's
/// keys, the record, small vectors); lookups are O(1); tick is O(expired
/// timers × log n).
class relay_core {
public:
  /// `self` is the relay's identity (clients may pin it). `seed` drives
  /// every random choice (channel ephemerals, restart spread), so the core
  /// never touches the OS random source. Throws std::invalid_argument when
  /// the limits contradict each other (max_frame_bytes too small for the
  /// messages the other limits allow; a zero page size or burst).
  relay_core(const protocol::identity& self, relay_limits limits, const protocol::key_seed& seed);
  ~relay_core();
  relay_core(relay_core&&) noexcept;
  relay_core& operator=(relay_core&&) noexcept;
  relay_core(const relay_core&) = delete;
  relay_core& operator=(const relay_core&) = delete;

  /// A transport connection was accepted from `ip` (the peer's address
  /// without port; used for the per-IP cap and echoed to that client only).
  /// Over max_connections it is closed at once.
  [[nodiscard]] std::vector<relay_action> accepted(conn_id c, std::string ip,
                                                   std::uint64_t now_ms);
  /// Bytes arrived on `c`, in order, in any chunking. Unknown ids are
  /// ignored (the core may have closed it a moment ago).
  [[nodiscard]] std::vector<relay_action> received(conn_id c, std::string_view bytes,
                                                   std::uint64_t now_ms);
  /// The transport saw `c` close (or failed writing to it).
  [[nodiscard]] std::vector<relay_action> closed(conn_id c, std::uint64_t now_ms);
  /// Time passes: handshake and idle timeouts, record expiry, circuit
  /// accept timeouts and durations. Call at next_deadline() or periodically.
  [[nodiscard]] std::vector<relay_action> tick(std::uint64_t now_ms);
  /// The earliest time tick() may have something to do (may be early,
  /// never late), or nullopt when nothing is scheduled.
  [[nodiscard]] std::optional<std::uint64_t> next_deadline() const;

  /// Graceful restart: every established client (and every one that
  /// establishes from now on) gets reconnect{after_ms}, after_ms drawn per
  /// identity uniformly from [0, spread_ms] by the seed, so they do not all
  /// come back at once. Connections stay open; the program closes them
  /// (or calls shutdown()) when it stops.
  [[nodiscard]] std::vector<relay_action> begin_restart(std::uint64_t now_ms,
                                                        std::uint64_t spread_ms);
  /// goodbye{shutdown, reason} to every established client, then closes
  /// every connection. The core is empty afterwards.
  [[nodiscard]] std::vector<relay_action> shutdown(const std::string& reason);

  [[nodiscard]] const relay_metrics& metrics() const;
  /// The metrics in Prometheus text exposition format (version 0.0.4),
  /// names prefixed kith_relay_, labelled families for requests (kind),
  /// rejections, closes and circuit ends (reason).
  [[nodiscard]] std::string prometheus_text() const;

  [[nodiscard]] const relay_limits& limits() const;
  [[nodiscard]] const protocol::public_key& id() const;
  /// The terms sent to clients in `welcome`.
  [[nodiscard]] relay_terms terms() const;
  /// True while `id` has an established connection (a registration).
  [[nodiscard]] bool is_registered(const protocol::public_key& id) const;

  /// Checks the core's cross-references (O(state)). Called on entry and
  /// exit of every mutating call in debug builds.
  void check_invariant() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace kith::relay
