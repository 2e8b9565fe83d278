#pragma once

// The relay's wire messages as C++ values. The bytes are Cap'n Proto
// (relay/schema/relay.capnp, specified in docs/relay-protocol.md), one
// message per sealed channel frame. encode_relay_message and
// decode_relay_message are the only way in and out; the decoder is the
// only code that reads relay message bytes from the network. Pure.

#include "kith/relay/record.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace kith::relay {

/// Sent in `welcome`. A client that sees another major version should not
/// expect the messages it does not know to work (the relay refuses them
/// with code::unsupported).
inline constexpr std::uint32_t relay_protocol_version = 1;

/// Relay-assigned circuit number, unique for the life of one relay core.
using circuit_id = std::uint64_t;

/// Why something was refused or ended. One enum for `refused`,
/// `circuit_closed` and `goodbye` (and the relay's metrics labels); a
/// value exists only where a client or an operator reacts differently.
/// Values are wire values: never renumber.
enum class code : std::uint16_t {
  rate_limited = 1,   // token bucket empty: slow down and retry later
  limit_reached = 2,  // a count cap (connections, topics, circuits...): try elsewhere or later
  not_found = 3,      // no such circuit / topic / request target
  bad_record = 4,     // announce: bad signature, expired, TTL too long, too large, stale seq
  forbidden = 5,      // announce for an identity other than the channel's
  not_connected = 6,  // circuit target is not connected to this relay
  peer_refused = 7,   // circuit target said no
  timeout = 8,        // circuit target did not answer in time
  bad_request = 9,    // malformed or out-of-place message
  unsupported = 10,   // a message this relay does not know (newer client)
  closed_by_peer = 11, // circuit closed by its other end (the text is theirs)
  byte_limit = 12,    // circuit reached circuit_max_bytes
  duration_limit = 13, // circuit reached circuit_max_duration_ms
  peer_gone = 14,     // the circuit's other end disconnected
  replaced = 15,      // goodbye: a newer connection of the same identity
  idle = 16,          // goodbye: nothing received for idle_timeout_ms
  abuse = 17,         // goodbye: kept flooding after rate_limited refusals
  shutdown = 18,      // goodbye: the relay is going away
  // Never sent (the channel is not up); metrics labels for closes only.
  handshake_failed = 19,
  handshake_timeout = 20,
  transport = 21,     // the transport reported the connection closed
};
inline constexpr std::uint16_t code_count = 22; // 1 + the largest value

/// Lowercase name for logs and metric labels ("rate_limited"); "unknown"
/// for a value this build does not know.
[[nodiscard]] const char* code_name(code c);

/// What a client should know of the relay's limits; sent in `welcome`.
struct relay_terms {
  std::uint32_t version = relay_protocol_version;
  std::uint64_t max_record_ttl_ms = 0;
  std::uint32_t max_record_addresses = 0;
  std::uint32_t max_topics_per_connection = 0;
  std::uint32_t max_page_size = 0;
  std::uint64_t circuit_max_bytes = 0;
  std::uint64_t circuit_max_duration_ms = 0;
  std::uint32_t max_circuit_frame_bytes = 0;
  std::uint64_t idle_timeout_ms = 0;
  std::uint32_t request_rate_per_s = 0;
  std::uint32_t request_burst = 0;
  /// The relay keeps resumption tickets: a client keeps this session's
  /// ticket and offers it on its next connection (docs/secure-channel.md).
  bool resumes = false;
};

// --- client -> relay ------------------------------------------------------------
// `req` is the client's request id, echoed in the answer (ok, refused,
// lookup_result, members_page, circuit_opened).

struct announce_msg {
  std::uint64_t req = 0;
  signed_record record;
};
struct lookup_msg {
  std::uint64_t req = 0;
  protocol::public_key id;
  /// When the identity has no record: tell this connection once it
  /// announces one (present_msg), instead of it asking again and again.
  bool watch = false;
};
struct join_msg {
  std::uint64_t req = 0;
  std::string topic;
};
struct leave_msg {
  std::uint64_t req = 0;
  std::string topic;
};
/// One page of a topic's members, in ascending id order after `cursor`
/// (empty = from the start; else the next_cursor of the previous page).
struct members_msg {
  std::uint64_t req = 0;
  std::string topic;
  std::string cursor;
  std::uint32_t limit = 0; // 0 or over the relay's max_page_size = max_page_size
};
struct watch_msg {
  std::uint64_t req = 0;
  std::string topic;
};
struct unwatch_msg {
  std::uint64_t req = 0;
  std::string topic;
};
struct open_circuit_msg {
  std::uint64_t req = 0;
  protocol::public_key target;
};
struct accept_circuit_msg {
  std::uint64_t req = 0;
  circuit_id circuit = 0;
};
struct refuse_circuit_msg {
  std::uint64_t req = 0;
  circuit_id circuit = 0;
  std::string reason;
};
struct close_circuit_msg {
  std::uint64_t req = 0;
  circuit_id circuit = 0;
  std::string reason;
};
struct ping_msg {
  std::uint64_t req = 0;
};

// --- both ways ------------------------------------------------------------------

/// Bytes of an end-to-end stream (normally a node-to-node secure channel)
/// carried over a circuit. The relay forwards them unread.
struct circuit_data_msg {
  circuit_id circuit = 0;
  std::string payload;
};

// --- relay -> client ------------------------------------------------------------

struct welcome_msg {
  relay_terms terms;
  std::string observed_ip;
  /// The relay's unix time in ms as it sent this; 0 from older relays.
  /// Clients stamp and check records in the relay's time, so that a
  /// client whose clock is off is still found (docs/relay-protocol.md).
  std::uint64_t relay_time_ms = 0;
};
struct ok_msg {
  std::uint64_t req = 0;
};
struct lookup_result_msg {
  std::uint64_t req = 0;
  protocol::public_key id;
  std::optional<signed_record> record;
  bool watching = false; // no record, and a present_msg follows when there is one
};
struct members_page_msg {
  std::uint64_t req = 0;
  std::string topic;
  std::vector<protocol::public_key> ids;
  std::string next_cursor; // empty = last page
};
struct topic_event_msg {
  std::string topic;
  protocol::public_key id;
  bool joined = true; // false = left
};
struct circuit_incoming_msg {
  circuit_id circuit = 0;
  protocol::public_key from;
};
struct circuit_opened_msg {
  std::uint64_t req = 0;
  circuit_id circuit = 0;
  protocol::public_key peer;
};
struct circuit_closed_msg {
  circuit_id circuit = 0;
  relay::code code = code::closed_by_peer;
  std::string reason;
};
struct refused_msg {
  std::uint64_t req = 0;
  relay::code code = code::bad_request;
  std::string detail;
};
struct reconnect_msg {
  std::uint64_t after_ms = 0;
};
/// Last message before the relay closes the connection.
struct goodbye_msg {
  relay::code code = code::shutdown;
  std::string reason;
};
struct pong_msg {
  std::uint64_t req = 0;
};
/// Unasked: an identity this connection looked up with `watch` (and did
/// not find) announced this record. Sent once per watch.
struct present_msg {
  signed_record record;
};

/// Decoded only: a union member this build does not know (a newer peer).
/// The relay answers refused{req, unsupported}; a client ignores it.
struct unknown_msg {
  std::uint64_t req = 0;
  std::uint16_t which = 0;
};

using relay_message =
    std::variant<announce_msg, lookup_msg, join_msg, leave_msg, members_msg, watch_msg,
                 unwatch_msg, open_circuit_msg, accept_circuit_msg, refuse_circuit_msg,
                 close_circuit_msg, ping_msg, circuit_data_msg, welcome_msg, ok_msg,
                 lookup_result_msg, members_page_msg, topic_event_msg, circuit_incoming_msg,
                 circuit_opened_msg, circuit_closed_msg, refused_msg, reconnect_msg,
                 goodbye_msg, pong_msg, present_msg, unknown_msg>;

namespace detail {
template <class T, class V>
struct index_in;
template <class T, class... Ts>
struct index_in<T, std::variant<Ts...>> {
  static constexpr std::size_t value = [] {
    constexpr bool same[] = {std::is_same_v<T, Ts>...};
    for (std::size_t i = 0; i < sizeof...(Ts); ++i)
      if (same[i])
        return i;
    return sizeof...(Ts);
  }();
};

template <class T, class = void>
struct has_req : std::false_type {};
template <class T>
struct has_req<T, std::void_t<decltype(std::declval<const T&>().req)>> : std::true_type {};
} // namespace detail

/// The relay_message index of message type T (for metrics arrays).
template <class T>
inline constexpr std::size_t message_index = detail::index_in<T, relay_message>::value;

/// Limits for decoding a relay message from untrusted bytes. These are
/// hard wire caps; relay_limits (core.hpp) holds the tighter policy caps.
struct wire_limits {
  std::size_t max_message_bytes = 128u << 10;      // whole packed message
  std::uint64_t traversal_limit_words = 64u << 10; // Cap'n Proto read limit (512 KiB)
  int nesting_limit = 8;
  std::size_t max_addresses = 64;                  // per record
  std::size_t max_address_bytes = 1024;
  std::size_t max_topic_bytes = 64;
  std::size_t max_page_ids = 1024;                 // ids per members page
  std::size_t max_reason_bytes = 1024;             // reasons, details, observed ip
  std::size_t max_payload_bytes = 64u << 10;       // circuit_data payload
};

/// Encodes a message (Cap'n Proto, packed). unknown_msg is decode-only:
/// passing one is a bug and throws std::invalid_argument.
[[nodiscard]] std::string encode_relay_message(const relay_message& m);

/// Decodes one message; on malformed or over-limit input returns nullopt
/// and says why in *why. Never throws. Fixed-size fields (ids 32 bytes,
/// signatures 64, a non-empty cursor 32) of another length are refused.
[[nodiscard]] std::optional<relay_message> decode_relay_message(std::string_view bytes,
                                                                const wire_limits& l = {},
                                                                std::string* why = nullptr);

/// A name for logs and metrics: "announce", "circuit_data", ...
[[nodiscard]] const char* relay_message_name(const relay_message& m);
/// The same by variant index (index < std::variant_size_v<relay_message>).
[[nodiscard]] const char* relay_message_name(std::size_t index);

/// The request id a message carries (0 for those without one).
[[nodiscard]] std::uint64_t request_id_of(const relay_message& m);

} // namespace kith::relay
