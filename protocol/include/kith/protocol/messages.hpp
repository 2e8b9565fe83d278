#pragma once

// The wire messages between two nodes, as C++ values. The bytes on the wire
// are Cap'n Proto (protocol/schema/kith.capnp, specified in
// docs/protocol.md); encode_message/decode_message are the only way in and
// out, and decode_message is the only code that reads untrusted message
// bytes. Pure: no sockets, no actors.

#include "kith/causality/anti_entropy.hpp"
#include "kith/protocol/signed_write.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kith::protocol {

/// The protocol version spoken in `hello`. A peer with another major
/// version is refused with error_code::version.
inline constexpr std::uint32_t protocol_version = 1;

/// A key's data as replicated: its stored writes (full bodies) and the
/// headers of overwritten or deleted writes it resolves.
struct signed_entry {
  key_type key;
  std::vector<std::pair<dot, std::string>> records; // dot, encoded write_body
  std::vector<write_header> resolves;
};

/// What one replica sends another: a push of fresh local writes, an
/// anti-entropy answer, or a resync page. Everything in it is checked
/// against the batch signatures and replica bindings it carries (or the
/// receiver already holds); nothing else in it is trusted. `clock` is the
/// sender's claim, used only to estimate what the sender has (the
/// watermark), never to decide what to drop.
struct signed_reply {
  std::string topic;
  replica_id from;
  causality::node_clock clock;
  std::vector<signed_entry> entries;
  std::vector<signed_batch> batches;
  std::vector<replica_binding> bindings;
  /// Writers' signed summaries of this topic the sender holds (the last
  /// part of a split reply carries them), with the bindings naming their
  /// writers in `bindings`.
  std::vector<writer_summary> summaries;
};

// --- messages -------------------------------------------------------------------

/// First message on an authenticated channel, both ways: who writes for
/// the identity the channel proved (its replica binding, which must name
/// that identity) and the software.
struct hello_msg {
  std::uint32_t version = protocol_version;
  replica_binding binding;
  std::string agent;
  /// The sender keeps channel resumption tickets (docs/secure-channel.md,
  /// "Resumption"): only then does the receiver keep the ticket of this
  /// channel and offer it on its next dial. An older node leaves it false.
  bool resumes = false;
};

/// "Send me these topics": the sender wants to pull them and to be pushed
/// new writes while connected. Answered with an offer of those the
/// receiver holds and will serve.
struct subscribe_msg {
  std::vector<std::string> topics;
};
struct unsubscribe_msg {
  std::vector<std::string> topics;
};
/// Descriptors of topics the sender holds and serves to this peer.
struct offer_msg {
  std::vector<topic_descriptor> topics;
  /// Topics the receiver is a new member of at the sender: the sender may
  /// already have forgotten dot headers the receiver lacks, so anti-entropy
  /// cannot name them; the receiver must do a full-state resync.
  std::vector<std::string> resync = {};
};

/// Anti-entropy step 1: the sender's full clock of a topic. The receiver
/// answers with a data_msg (kind answer) holding what the sender misses.
struct sync_request_msg {
  std::string topic;
  causality::node_clock clock;
};

enum class data_kind : std::uint8_t { push = 0, answer = 1, resync = 2 };

/// Signed data: a push of fresh writes, (part of) an anti-entropy answer,
/// or a resync page. An answer or resync larger than a frame is split into
/// parts; `last` marks the final part of one answer or page.
struct data_msg {
  data_kind kind = data_kind::push;
  bool last = true;
  signed_reply reply;
};

/// "This is what I have now" for a topic: lets the receiver advance its
/// watermark (and so prune headers) without a full anti-entropy round.
struct watermark_msg {
  std::string topic;
  causality::node_clock clock;
};

/// Full-state resync for a new or returning replica: every stored key of
/// the topic after `after_key` (exclusive; empty = from the start), at
/// most max_entries keys per page. Resumable: the asker keeps the last key
/// it applied and asks again from there.
struct resync_request_msg {
  std::string topic;
  std::string after_key;
  std::uint32_t max_entries = 1024;
  /// The asker's clock: keys whose stored dots it all covers are not
  /// sent, only named by their dots in resync_done_msg::held (empty: send
  /// every key).
  causality::node_clock have = {};
};
/// One page: data (kind resync) in the data_msg that follows, then this
/// marker with the cursor to continue from.
struct resync_done_msg {
  std::string topic;
  std::string next_after; // last key in the page
  bool complete = false;  // no keys after next_after
  /// Dots of the page's keys left out because the asker's clock covers
  /// them: the sender still holds them (they are not dropped at the end).
  causality::node_clock held = {};
};

struct keepalive_msg {
  std::uint64_t nonce = 0;
  bool reply = false;
};

/// Queries to an aggregator (a node that follows many feeds and serves
/// read-only views of them). The answer carries signed documents that
/// verify on their own (verify_standalone); the tag counts of `trending`
/// are the aggregator's claim.
enum class query_kind : std::uint8_t { mentions = 0, thread = 1, tag = 2, trending = 3 };

struct query_msg {
  std::uint64_t id = 0;
  query_kind kind = query_kind::mentions;
  std::string arg;
  std::uint32_t limit = 20;
  std::uint64_t since_ms = 0;
  std::uint64_t until_ms = 0; // 0: no upper bound
};

/// One document of one author's feed, with its proofs.
struct query_item {
  public_key author;
  signed_reply reply;
};

struct tag_count_msg {
  std::string tag;
  std::uint64_t count = 0;
};

struct query_result_msg {
  std::uint64_t id = 0;
  std::vector<query_item> items;
  std::vector<tag_count_msg> tags;
  std::string refused; // non-empty: not served, and why
};

enum class error_code : std::uint16_t {
  protocol = 1,      // malformed or unexpected message
  version = 2,       // unsupported protocol version
  unauthorized = 3,  // a write or request the sender may not make
  bad_signature = 4, // data that failed verification
  limit = 5,         // a size or rate limit was exceeded
  unknown_topic = 6, // a topic the receiver does not hold
  shutdown = 7,      // the sender is going away
  internal = 8,
};

/// Last message before the sender closes the channel.
struct error_msg {
  error_code code = error_code::protocol;
  std::string reason;
};

using message = std::variant<hello_msg, subscribe_msg, unsubscribe_msg, offer_msg,
                             sync_request_msg, data_msg, watermark_msg, resync_request_msg,
                             resync_done_msg, keepalive_msg, error_msg, query_msg,
                             query_result_msg>;

/// Limits for decoding a message from untrusted bytes (see
/// docs/protocol.md). One place, one struct.
struct message_limits {
  signed_limits sig{};
  std::size_t max_message_bytes = 8u << 20;   // whole encoded message
  std::uint64_t traversal_limit_words = 2u << 20; // Cap'n Proto read limit
  int nesting_limit = 16;
  std::size_t max_topics = 4096;              // per subscribe/offer
  std::size_t max_entries = 65536;            // keys per data message
  std::size_t max_records_per_key = 1024;     // siblings + resolved headers
  std::size_t max_batches = 65536;
  std::size_t max_bindings = 4096;
  std::size_t max_summaries = 4096;           // writer summaries per data message
  std::size_t max_key_bytes = 4096;
  std::size_t max_value_bytes = 1u << 20;     // one write body
  std::size_t max_reason_bytes = 1024;
  std::size_t max_query_items = 256;          // documents per query result
  std::size_t max_query_tags = 256;           // tag counts per query result
};

/// Encodes a message (Cap'n Proto, packed). Leaves of a batch whose
/// record travels in the same message are not sent (the receiver
/// recomputes them), so signatures cost no per-entry hash on the wire.
[[nodiscard]] std::string encode_message(const message& m);

/// Decodes one message; on malformed or over-limit input returns nullopt
/// and says why in *why. Never throws.
[[nodiscard]] std::optional<message> decode_message(std::string_view bytes,
                                                    const message_limits& l = {},
                                                    std::string* why = nullptr);

/// Splits a reply into parts whose encoding stays under max_bytes each
/// (roughly: a single entry larger than that goes alone). Each part
/// carries the batches and bindings its records need, so each part
/// verifies on its own.
[[nodiscard]] std::vector<signed_reply> split_reply(const signed_reply& r, std::size_t max_bytes);

/// A write proven by a reply on its own, without any stored state.
struct proven_write {
  key_type key;
  dot d;
  write_body body;
};

/// Verifies a reply of `author`'s feed standalone, for data from a party
/// that is not trusted to have checked anything (an aggregator): the
/// reply's topic is the author's feed, every binding verifies and names
/// the author, every record is a leaf of a batch carried in the reply
/// whose signature verifies, and every key lies under the author's id.
/// Returns the writes, or nullopt with the first problem in *why. It says
/// who wrote what, not that nothing newer exists: an aggregator can
/// withhold a later edit or delete.
[[nodiscard]] std::optional<std::vector<proven_write>>
verify_standalone(const signed_reply& r, const public_key& author, std::string* why = nullptr);

/// A name for logs: "hello", "data", ...
[[nodiscard]] const char* message_name(const message& m);
/// The name of alternative `index` of message ("unknown" past the last).
[[nodiscard]] const char* message_name(std::size_t index);

} // namespace kith::protocol
