#pragma once

#include "kith/causality/anti_entropy.hpp"
#include "kith/causality/dot_key_map.hpp"
#include "kith/protocol/messages.hpp"
#include "kith/protocol/signed_write.hpp"
#include "kith/protocol/topic_name.hpp"
#include "kith/storage/kv.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kith::storage {

namespace layout {
class topic_rows;
} // namespace layout

using causality::dot;
using causality::key_type;
using causality::replica_id;
using causality::version_vector;
using protocol::signed_batch;
using protocol::topic_descriptor;
using protocol::write_header;

/// The on-disk layout version. Bumped on any incompatible change; open
/// migrates a store of format 1 (topics named by id in every row) in place
/// and refuses any other version.
inline constexpr std::uint32_t format_version = 2;
/// The format record while a format-1 store is being migrated: refused by
/// every kith that reads format 1 only, resumed by this one.
inline constexpr std::uint32_t format_migrating_from_1 = 0x8001;

struct store_options {
  /// fsync every committed batch. Off, a crash of the process loses
  /// nothing (the OS has the data) but a power cut may lose the last
  /// writes.
  bool sync = true;
  /// Nonce for this store's replica id (0: drawn from the OS). Tests and
  /// the simulator pass a seeded value.
  std::uint64_t replica_nonce = 0;
};

/// One write of a local batch: a value, or a delete (nullopt), replacing
/// what `context` covers (the context a read returned).
struct write_op {
  key_type key;
  std::optional<std::string> value;
  version_vector context;
};

/// One sibling of a key as a reader sees it.
struct sibling_view {
  dot d;
  std::string value;
  std::uint64_t time_ms = 0;
};

/// What a read of one key returns: the live siblings and the context to
/// pass back so a later write replaces them all.
struct key_view {
  std::vector<sibling_view> siblings;
  version_vector context;
};

using protocol::signed_entry;
using protocol::signed_reply;

struct apply_stats {
  std::size_t keys_changed = 0;
  std::size_t new_dots = 0;
  std::size_t batches_verified = 0; // signatures checked (not cached)
};

/// A post found through an index.
struct index_hit {
  std::string topic;
  key_type key;
  dot d;
  std::uint64_t time_ms = 0;
};

/// A hashtag and how many posts carry it.
struct tag_count {
  std::string tag;
  std::uint64_t count = 0;
};

/// The node's durable state: per-topic clocks, containers, dot-key maps,
/// watermarks, signed batches, replica bindings, write headers kept for
/// replicas that have not seen them, and derived indexes. Each change is
/// one atomic kv batch: a clock never covers a dot whose effect is not
/// stored with it. Per-topic metadata is loaded on first use.
/// Thread-safe: every public member takes one store-wide lock, so the
/// node's topic actors may call it from any scheduler thread (each topic
/// actor is the single writer of its topic). clock() returns a pointer
/// into the state: only single-threaded callers may use it.
class store {
public:
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Opens the store in dir (RocksDB). With create, a missing store is
  /// created for `self`; an existing store must belong to `self`.
  [[nodiscard]] static result<std::unique_ptr<store>>
  open(const std::string& dir, const protocol::identity& self, bool create,
       const store_options& opts = {});
  /// The same store over a caller-provided kv (in-memory for tests and
  /// the simulator).
  [[nodiscard]] static result<std::unique_ptr<store>>
  open(std::unique_ptr<kv_store> kv, const protocol::identity& self, const store_options& opts = {});

  [[nodiscard]] replica_id self_id() const { return binding_.rid; }
  [[nodiscard]] const protocol::replica_binding& binding() const { return binding_; }
  [[nodiscard]] const protocol::public_key& author() const { return self_.pub(); }

  // --- topics -------------------------------------------------------------
  /// Registers a topic (checks its descriptor). The owner's feed topic is
  /// registered at creation.
  [[nodiscard]] status add_topic(const topic_descriptor& t);
  [[nodiscard]] std::optional<topic_descriptor> topic(const std::string& id) const;
  [[nodiscard]] std::vector<std::string> topics() const;
  [[nodiscard]] std::string feed_topic_id() const { return feed_id_; }
  /// The replicas of a topic that pruning waits for (self is always one).
  /// Full resyncs owed to replicas left out are forgotten in the same
  /// commit (a retired replica that comes back joins afresh).
  [[nodiscard]] status set_members(const std::string& topic, std::vector<replica_id> members);
  /// Makes rid a member that owes us a full resync, in one commit with the
  /// membership: what we pruned before it joined (or while it was retired)
  /// no longer reaches it by anti-entropy. The debt is kept in the store,
  /// so a restart of this node cannot forget it, and lasts until
  /// settle_resync sees a report of rid's clock that covers our own writes
  /// up to our base now. Returns false, changing nothing, when rid is
  /// already a member.
  [[nodiscard]] result<bool> join_member(const std::string& topic, replica_id rid);
  /// Whether member rid still owes a full resync (joined, not confirmed).
  [[nodiscard]] bool owes_resync(const std::string& topic, replica_id rid);
  /// Clears rid's resync debt if its reported clock `c` covers our own
  /// entry up to the base we had when it joined: it then holds, or saw
  /// superseded, everything we had pruned. Cheap when nothing is owed.
  [[nodiscard]] status settle_resync(const std::string& topic, replica_id rid,
                                     const causality::node_clock& c);

  // --- local writes and reads ----------------------------------------------
  /// Signs the ops as one batch (one signature) and commits them in one
  /// atomic change. Returns the push to send to the topic's members.
  [[nodiscard]] result<signed_reply> write(const std::string& topic,
                                           const std::vector<write_op>& ops,
                                           std::uint64_t time_ms);
  [[nodiscard]] result<key_view> read(const std::string& topic, const key_type& k);
  /// Every stored key of the topic starting with prefix.
  [[nodiscard]] result<std::vector<std::pair<key_type, key_view>>>
  read_prefix(const std::string& topic, const std::string& prefix);

  // --- replication ----------------------------------------------------------
  [[nodiscard]] result<causality::sync_request> make_request(const std::string& topic);
  /// Answers a peer's clock with what it misses, signed data only. The
  /// asker's clock is taken as its own report for the watermark.
  [[nodiscard]] result<signed_reply> answer(const std::string& topic,
                                            const causality::sync_request& req);
  /// One page of a full-state resync: every stored key of the topic after
  /// after_key (exclusive; "" = from the start), at most max_keys and,
  /// past the first key, at most max_bytes of keys and values, with all
  /// their writes and the batches and bindings that prove them. A new or
  /// returning replica applies pages in order and resumes from
  /// next_after; each page verifies on its own. With `have` (the asker's
  /// clock), a key whose stored dots are all in it is left out of the
  /// reply and its dots go into `held`: the asker has them, or saw them
  /// overwritten, and needs only to know that we still hold them (so the
  /// end of the resync does not take them for dropped). max_keys counts
  /// the keys left out too.
  struct page_result {
    signed_reply reply;
    std::string next_after;
    bool complete = false;
    causality::node_clock held;
  };
  static constexpr std::size_t default_page_bytes = 4u << 20;
  /// Writer summaries one answer or resync page carries at most (each is
  /// at most protocol::max_signed_live_runs runs: about 1.5 MB in all).
  static constexpr std::size_t max_summaries_per_reply = 64;
  [[nodiscard]] result<page_result> page(const std::string& topic, const std::string& after_key,
                                         std::size_t max_keys,
                                         std::size_t max_bytes = default_page_bytes,
                                         const causality::node_clock* have = nullptr);
  /// Every stored key of the topic starting with `prefix` (at most
  /// max_keys) with the batches and bindings that prove its writes, so the
  /// result verifies on its own (protocol::verify_standalone): what an
  /// aggregator serves for one document. No clock is included.
  [[nodiscard]] result<signed_reply> prove_prefix(const std::string& topic,
                                                  const std::string& prefix, std::size_t max_keys);
  /// Ends a resync from `sender`: adds the sender's own clock entry (from
  /// the first page's clock) to ours, so dots of the sender that were
  /// overwritten and forgotten before we joined leave no gap. Only the
  /// sender's own writes are vouched for, and only first-hand: the caller
  /// must have authenticated `sender` as the other end of the channel.
  /// With `sender_held` (every dot the whole resync carried or named as
  /// held), stored
  /// writes of the sender's author, under any replica id whose binding we
  /// hold, that the sender's clock covers but the resync did not carry are
  /// dropped: the author overwrote or deleted them, and the record of that
  /// may be gone from every replica that would have told us (a follower
  /// that got an old copy elsewhere would otherwise keep a deleted post
  /// forever; an author that lost its store deletes old posts under its
  /// new id). If we hold a third party's write that the sender's clock
  /// covers and the resync did not carry, the entry is not joined while
  /// it would add dots we have not seen: one of them may be the write that
  /// replaced that value, and claiming it without its effect would keep
  /// the value for ever (anti-entropy delivers it instead).
  /// With `trust_writers`, in a shared topic whose writer the sender is, a
  /// third party's write on a key the sender may write (its own documents
  /// and the creator's) that the sender's clock covers and the resync did
  /// not carry is dropped too, as a delete from the sender would, and
  /// when nothing is left unexplained the sender's whole clock is joined
  /// (ours aside): every write it covers was carried, named as held or is
  /// dead, and claiming the dead ones keeps a stale replica from handing
  /// us one later as new. The
  /// sender's clock is not signed, so this trusts the writer not to drop
  /// values at one replica only; the node turns it on only with
  /// sync_settings::retire_shared, where a returning member has no other
  /// way to learn of such overwrites.
  [[nodiscard]] status join_sender_entry(const std::string& topic, replica_id sender,
                                         const causality::node_clock& sender_clock,
                                         const causality::node_clock* sender_held = nullptr,
                                         bool trust_writers = false);
  /// Verifies everything in a push or an answer and applies it in one
  /// atomic change. On any verification failure nothing is stored.
  [[nodiscard]] result<apply_stats> apply(const signed_reply& r);

  // --- indexes ----------------------------------------------------------------
  /// The newest posts of an author (by the write's time, then by dot).
  /// `before_ms` (0: none) pages: only posts older than that time. With
  /// `after`, (before_ms, after) is a cursor: only posts that come after
  /// that one in this order, so posts sharing a millisecond are not skipped.
  [[nodiscard]] result<std::vector<index_hit>> by_author(const protocol::public_key& a,
                                                         std::size_t limit,
                                                         std::uint64_t before_ms = 0,
                                                         const std::optional<dot>& after = {});
  /// The newest posts whose text @mentions `who`.
  [[nodiscard]] result<std::vector<index_hit>> by_mention(const protocol::public_key& who,
                                                          std::size_t limit,
                                                          std::uint64_t before_ms = 0);
  /// Replies this node holds to the status `subject` (the key of each
  /// reply's reply_to property), newest first.
  [[nodiscard]] result<std::vector<index_hit>> replies_to(const std::string& subject,
                                                          std::size_t limit);
  /// The newest posts carrying #tag (lower-case, without '#').
  [[nodiscard]] result<std::vector<index_hit>> by_tag(const std::string& tag, std::size_t limit);
  /// Hashtags of the posts written in [since_ms, until_ms] (the writes'
  /// own times) with their number of posts, most used first (ties by
  /// tag), at most `limit`. Reads only the window's index rows.
  [[nodiscard]] result<std::vector<tag_count>> trending(std::uint64_t since_ms,
                                                        std::uint64_t until_ms, std::size_t limit);
  /// Drops and rebuilds every derived index from the stored containers.
  /// Returns the number of index rows written.
  [[nodiscard]] result<std::size_t> reindex();
  /// Every index row, in order: for comparing incremental with rebuilt.
  [[nodiscard]] result<std::vector<std::string>> index_rows();

  // --- checks -------------------------------------------------------------------
  /// Cross-checks a topic: every stored dot is covered by the clock and
  /// its body decodes and matches a stored signed batch; own dots have no
  /// gaps. Returns a description of the first problem found.
  [[nodiscard]] status check_topic(const std::string& topic);
  [[nodiscard]] const causality::node_clock* clock(const std::string& topic);
  /// A copy of the topic's clock (nullopt for an unknown topic).
  [[nodiscard]] std::optional<causality::node_clock> clock_copy(const std::string& topic);
  /// The replicas pruning waits for (self included).
  [[nodiscard]] result<std::vector<replica_id>> members(const std::string& topic);
  /// The identity a replica id is bound to, if we hold its (verified)
  /// binding: the replicas whose writes we hold, and our own.
  [[nodiscard]] result<std::optional<protocol::public_key>> author_of(replica_id rid);
  /// Records a member's own report of its clock (a watermark message).
  /// Ignored for non-members.
  [[nodiscard]] status observe(const std::string& topic, replica_id from,
                               const causality::node_clock& c);
  [[nodiscard]] std::size_t superseded_count(const std::string& topic);
  /// The newest writer summary held for replica rid in the topic, if any:
  /// its writer's own, or with `by` the one its later replica `by` vouched
  /// with (protocol::writer_summary).
  [[nodiscard]] std::optional<protocol::writer_summary>
  summary(const std::string& topic, replica_id rid, std::optional<replica_id> by = std::nullopt);
  /// The dots whose write headers are kept (overwritten or deleted writes
  /// that some member may not have seen yet), in order. A scan of their
  /// rows: for measurements and tests.
  [[nodiscard]] std::vector<dot> kept_dots(const std::string& topic);
  /// The signed batches stored for the topic (a scan of their rows: for
  /// measurements and tests). Batches that prove nothing the store still
  /// holds are dropped as writes go by (drop_spent_batches).
  [[nodiscard]] std::size_t batch_count(const std::string& topic);
  /// Drops the topic's spent batches now (commit does it as batches come:
  /// see drop_spent_batches below). For tests and tools.
  [[nodiscard]] status sweep_batches(const std::string& topic);
  /// Stored batches between two sweeps at least (see drop_spent_batches).
  static constexpr std::size_t min_batches_per_sweep = 16;
  /// Sizes of a topic's causality metadata held in memory.
  struct metadata_sizes {
    std::size_t members = 0;         // watermark members, self included
    std::size_t dot_map_entries = 0; // dots not yet known to every member
    std::size_t unstripped_keys = 0; // keys whose stored context is not empty
  };
  [[nodiscard]] std::optional<metadata_sizes> metadata(const std::string& topic);
  /// Per-key causality metadata, from a scan of every stored key of the
  /// topic: for measurements and the simulator's checkpoints.
  struct key_sizes {
    std::size_t keys = 0;
    std::size_t max_siblings = 0;        // values held for one key
    std::size_t max_context_entries = 0; // entries of one key's stored context
  };
  [[nodiscard]] result<key_sizes> key_metadata(const std::string& topic);
  [[nodiscard]] std::uint64_t memory_usage() const { return kv_->memory_usage(); }

  struct topic_state;

private:
  store(std::unique_ptr<kv_store> kv, const protocol::identity& self, const store_options& o);
  status init(bool may_create);
  /// Reads the topic numbers ('n' rows) into numbers_ and names_.
  status load_numbers();
  /// Renames the rows of a format-1 store to format 2 in batches, each
  /// atomic; an interrupted migration resumes on the next open (the
  /// format record changes last). Defined in migrate.cpp.
  status migrate_from_format_1();
  /// The topic's number in its rows, if the topic is registered.
  std::optional<layout::topic_rows> rows_of(std::string_view topic) const;
  /// The number the next topic gets (one past the greatest given).
  std::uint32_t next_number() const { return names_.empty() ? 1 : names_.rbegin()->first + 1; }
  /// Records a number once its n row is committed.
  void remember_number(const std::string& topic, std::uint32_t n) {
    numbers_[topic] = n;
    names_[n] = topic;
  }
  result<topic_state*> state(const std::string& topic);
  struct commit_input;
  /// Whether committing `in` would leave the topic exactly as it is (then
  /// commit writes nothing).
  [[nodiscard]] bool changes_nothing(const topic_state& ts, const commit_input& in) const;
  status commit(topic_state& ts, commit_input& in);
  /// Drops the topic's signed batches that no longer prove anything held:
  /// none of their counters is a write some key holds ('c' rows) or a
  /// kept header ('s' rows). A scan of those rows and the batches, in
  /// one atomic batch of deletes. commit runs it once at least
  /// min_batches_per_sweep batches were stored since the last one, and
  /// no sooner than the batches that one kept and an eighth of the rows
  /// it read: a few row reads per stored batch, whatever the topic's size.
  // TODO(perf): the commit that triggers a sweep pays all of it (a topic
  // of a million keys reads them all at once); a sweep in slices of the
  // key range would spread it.
  status drop_spent_batches(topic_state& ts);
  /// Rows of one kind of the topic (a scan): superseded_count, batch_count.
  std::size_t count_rows(const std::string& topic, char kind);
  /// Keeps newer writer summaries (verified by the caller) and drops the
  /// stored values they say their writers superseded, in one commit.
  status apply_summaries(topic_state& ts, std::vector<protocol::writer_summary> summaries);
  /// Adds to `out` the summaries held for the topic (with their bindings),
  /// all of them or those `asker`'s clock does not cover, at most
  /// max_summaries_per_reply, going round them from call to call.
  /// Returns how many.
  std::size_t attach_summaries(topic_state& ts, const causality::node_clock* asker,
                               protocol::signed_reply& out);

  std::unique_ptr<kv_store> kv_;
  protocol::identity self_;
  store_options opts_;
  protocol::replica_binding binding_;
  std::string feed_id_;
  // Topic ids here are shared with every other holder in the process
  // (protocol::topic_name): a simulated network holds each feed's id once.
  std::map<protocol::topic_name, std::unique_ptr<topic_state>, std::less<>> topics_;
  /// Every registered topic's number and back, loaded on open: about 200
  /// bytes per topic. A node holds its follows' feeds and its groups;
  /// an aggregator with millions of topics would want these read from
  /// the 'n' rows on demand instead.
  // TODO(perf): an on-demand lookup with a bounded cache for aggregators.
  std::map<protocol::topic_name, std::uint32_t, std::less<>> numbers_;
  std::map<std::uint32_t, protocol::topic_name> names_;
  mutable std::recursive_mutex mu_;
};

/// Hashtags in a text: '#' followed by letters, digits or '_', lower-cased.
[[nodiscard]] std::vector<std::string> hashtags(std::string_view text);
/// Mentions in a text: '@' followed by an id's text form.
[[nodiscard]] std::vector<std::string> mentions(std::string_view text);

} // namespace kith::storage
