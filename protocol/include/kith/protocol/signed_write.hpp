#pragma once

#include "kith/causality/codec.hpp"
#include "kith/causality/types.hpp"
#include "kith/causality/version_vector.hpp"
#include "kith/protocol/crypto.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::protocol {

using causality::counter;
using causality::dot;
using causality::key_type;
using causality::replica_id;
using causality::version_vector;

/// Limits for decoding signed structures from untrusted bytes.
struct signed_limits {
  causality::decode_limits base{};
  std::size_t max_batch_leaves = 4096;   // writes under one signature
  std::size_t max_topic_bytes = 256;
  std::size_t max_writers = 4096;        // allow-list of a shared topic
  std::size_t max_summary_runs = 65536;  // live runs of one writer summary
};

// --- replica bindings -------------------------------------------------------

/// States that replica id `rid` writes for `author`. The id is derived
/// from the key and a nonce (first 8 bytes of a hash), so nobody can claim
/// another identity's replica id without a 2^64 search, and the signature
/// shows the author chose it. A node that loses its store picks a new nonce
/// and so a new replica id.
struct replica_binding {
  public_key author;
  std::uint64_t nonce = 0;
  replica_id rid;
  signature sig;
};

[[nodiscard]] replica_id derive_replica_id(const public_key& author, std::uint64_t nonce);
[[nodiscard]] replica_binding bind_replica(const identity& author, std::uint64_t nonce);
/// Derivation and signature both check out.
[[nodiscard]] bool check_binding(const replica_binding& b);

// --- topics -------------------------------------------------------------------

/// Who may write a topic. A feed is its owner's own documents; a shared
/// topic names its writers; an open topic takes any signed write.
enum class topic_kind : std::uint8_t { feed = 0, shared = 1, open = 2 };

/// A replication group and its write rule. A feed's id is derived from its
/// owner ("feed/<id>"); a shared or open topic's id is a hash of its signed
/// descriptor ("topic/<hex>"), so the allow-list cannot be swapped without
/// changing the id.
struct topic_descriptor {
  std::string id;
  topic_kind kind = topic_kind::feed;
  public_key creator;
  std::string name;
  std::vector<public_key> writers; // shared: allowed besides the creator
  std::uint64_t nonce = 0;
  signature sig;                   // creator's, over everything above but id
};

[[nodiscard]] topic_descriptor feed_topic(const public_key& owner);
[[nodiscard]] topic_descriptor make_topic(const identity& creator, topic_kind kind,
                                          std::string name, std::vector<public_key> writers,
                                          std::uint64_t nonce);
/// The descriptor is well formed: id derived correctly, signature valid.
[[nodiscard]] bool check_topic(const topic_descriptor& t, std::string* why = nullptr);
/// The write rule: may `author` write to topic t?
[[nodiscard]] bool may_write(const topic_descriptor& t, const public_key& author);

// --- writes -----------------------------------------------------------------

/// What a write stores in its container sibling: the value or a delete,
/// the author's clock time, and the read context it replaces.
struct write_body {
  bool deleted = false;
  std::uint64_t time_ms = 0;
  version_vector context;
  std::string value;
};

[[nodiscard]] std::string encode_body(const write_body& b);
[[nodiscard]] std::optional<write_body> decode_body(std::string_view bytes,
                                                    const signed_limits& l = {});

/// A write without its value: what a peer keeps of an overwritten or
/// deleted write until every replica has seen it, and what justifies
/// dropping data. Verifiable on its own through the value's hash.
struct write_header {
  key_type key;
  dot d;
  bool deleted = false;
  std::uint64_t time_ms = 0;
  version_vector context;
  hash256 value_hash{};

  friend bool operator==(const write_header& a, const write_header& b) {
    return a.key == b.key && a.d == b.d && a.deleted == b.deleted && a.time_ms == b.time_ms &&
           a.context == b.context && a.value_hash == b.value_hash;
  }
};

[[nodiscard]] write_header header_of(const key_type& k, dot d, const write_body& b);
/// The leaf a batch signature covers: topic, key, dot, delete flag, time,
/// read context and value hash.
[[nodiscard]] hash256 leaf_hash(std::string_view topic, const write_header& h);
void encode(causality::writer& w, const write_header& h);
[[nodiscard]] bool decode(causality::reader& r, write_header& h, const signed_limits& l = {});

// --- batches ------------------------------------------------------------------

/// One signature over the leaves of a run of consecutive dots of one
/// replica in one topic: counters first .. first + leaves.size() - 1.
/// Signing costs one ed25519 signature per batch; verifying a received run
/// costs one verification per batch plus a hash per write.
struct signed_batch {
  std::string topic;
  replica_id rid;
  std::uint64_t first = 0;
  std::vector<hash256> leaves;
  signature sig;

  [[nodiscard]] std::uint64_t last() const { return first + leaves.size() - 1; }
  [[nodiscard]] bool covers(dot d) const {
    return d.id == rid && d.n.value() >= first && d.n.value() <= last();
  }
  [[nodiscard]] const hash256& leaf(dot d) const { return leaves[d.n.value() - first]; }
};

[[nodiscard]] std::string batch_message(const signed_batch& b);
[[nodiscard]] signed_batch sign_batch(const identity& author, std::string topic, replica_id rid,
                                      std::uint64_t first, std::vector<hash256> leaves);
[[nodiscard]] bool check_batch(const signed_batch& b, const public_key& author);

// --- writer summaries -----------------------------------------------------------

/// A writer's signed statement about its own writes in one topic: of the
/// counters 1..upto of its replica `rid`, only those in `live` may still
/// be values; every other one was overwritten or deleted (or was a
/// delete) at the writer. Any replica may relay it; a receiver that holds
/// a value of rid with such a counter drops it (docs/architecture.md,
/// "Signed writer summaries"). A later summary of the same replica has a
/// greater `upto` and replaces the earlier one. The writer is the author
/// of rid's binding; the signature is checked against it.
///
/// A writer who lost their store writes under a new replica id and may
/// overwrite or delete what their old replica wrote. The new replica
/// then vouches for the old one: a summary of the old `rid` with `by`
/// set to the new replica and `by_upto` to its counter when it signed.
/// Its dropped counters are those the new replica's own writes 1..by_upto
/// superseded, so a peer whose clock has all of those has its effect.
/// The writer keeps one summary per (rid, by); `signer_upto` orders each.
struct writer_summary {
  std::string topic;
  replica_id rid;
  std::uint64_t upto = 0;
  /// Sorted, disjoint, non-adjacent runs of counters: (first, length).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  /// 0: rid's own summary. Otherwise the writer's later replica that
  /// superseded the dropped counters, and its counter when it signed.
  replica_id by{0};
  std::uint64_t by_upto = 0;
  signature sig;

  [[nodiscard]] bool vouched() const { return by.value() != 0; }
  /// The replica whose writes superseded the dropped counters.
  [[nodiscard]] replica_id signer() const { return vouched() ? by : rid; }
  /// That replica's counter when it signed: a later summary of the same
  /// (rid, signer) has a greater one and replaces this one. A clock with
  /// every counter of signer() up to this holds the summary's effect.
  [[nodiscard]] std::uint64_t signer_upto() const { return vouched() ? by_upto : upto; }

  [[nodiscard]] bool covers(dot d) const { return d.id == rid && d.n.value() <= upto; }
  /// d is rid's and in a live run (or above upto: not spoken of).
  [[nodiscard]] bool live_at(dot d) const;
  /// The summary says d was superseded: rid's, at most upto, not live.
  [[nodiscard]] bool drops(dot d) const { return covers(d) && !live_at(d); }
  /// The counters first..last (first <= last) join the live runs.
  void add_live(std::uint64_t first, std::uint64_t last);
  /// The counter n leaves the live runs.
  void remove_live(std::uint64_t n);
  /// At most max_runs runs, by joining the runs with the smallest gaps
  /// between them: the gaps' counters count as live again, which only
  /// keeps values that might have been dropped (a summary's "live" means
  /// "may still be a value").
  void coarsen(std::size_t max_runs);
};

/// The most live runs a writer signs (store::write coarsens to it), well
/// under what a receiver decodes (signed_limits::max_summary_runs).
inline constexpr std::size_t max_signed_live_runs = 4096;

[[nodiscard]] std::string summary_message(const writer_summary& s);
/// Signs s (topic, rid, upto and live set) with the writer's key.
void sign_summary(const identity& writer, writer_summary& s);
/// Well formed (runs sorted, disjoint, within 1..upto; `by`, if set,
/// another replica with by_upto >= 1) and signed by `writer`.
[[nodiscard]] bool check_summary(const writer_summary& s, const public_key& writer);

void encode(causality::writer& w, const writer_summary& s);
[[nodiscard]] bool decode(causality::reader& r, writer_summary& s, const signed_limits& l = {});

void encode(causality::writer& w, const replica_binding& b);
void encode(causality::writer& w, const topic_descriptor& t);
void encode(causality::writer& w, const signed_batch& b);
[[nodiscard]] bool decode(causality::reader& r, replica_binding& b, const signed_limits& l = {});
[[nodiscard]] bool decode(causality::reader& r, topic_descriptor& t, const signed_limits& l = {});
[[nodiscard]] bool decode(causality::reader& r, signed_batch& b, const signed_limits& l = {});

} // namespace kith::protocol
