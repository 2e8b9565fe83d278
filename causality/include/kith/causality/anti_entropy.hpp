#pragma once

#include "kith/causality/container.hpp"
#include "kith/causality/dot_key_map.hpp"
#include "kith/causality/node_clock.hpp"

#include <optional>
#include <vector>

namespace kith::causality {

/// Read access to a replica's stored (stripped) containers. The in-memory
/// replica implements it over a map; the node's storage over RocksDB.
class container_source {
public:
  virtual ~container_source() = default;
  /// The stored container of k, or nullopt when k is not stored.
  [[nodiscard]] virtual std::optional<container> load(const key_type& k) const = 0;
};

/// One key in a delta: its container, and (anti-entropy answers only) the
/// asker's missing dots that the sender's dot-key map maps to this key.
/// The receiver adds such a dot to its clock only when the received
/// container's context covers it, i.e. only when the dot's effect on this
/// key is captured by what it stores. This closes the gap left by a
/// third party's dot that was overwritten before the asker saw it.
struct delta_entry {
  key_type key;
  container dcc;
  std::vector<dot> resolves;

  friend bool operator==(const delta_entry& a, const delta_entry& b) {
    return a.key == b.key && a.dcc == b.dcc && a.resolves == b.resolves;
  }
};

/// A batch of changes from one replica: fresh local writes pushed to the
/// members, or the entries of an anti-entropy answer. Each container is
/// stripped against the sender's clock (delete markers kept on a push); the
/// receiver fills it with the bases of `clock` before merging, which is how
/// a write's "what I had seen" reaches the receiver without a per-key
/// context. A push may carry only the bases (node_clock::base_only()).
struct delta {
  replica_id from;
  node_clock clock;
  std::vector<delta_entry> entries;
};

/// Step 1 of a pull: A tells B what it has.
struct sync_request {
  replica_id from;
  node_clock clock;                 // A's full clock, bitmaps included
};

/// Step 3 of a pull: B's answer. changes.clock is B's full clock.
struct sync_reply {
  delta changes;
  watermark marks;                  // B's watermark
};

/// What a replica must write after receiving data, as one atomic change:
/// keys to store or erase, dots to add to the clock and the dot-key map.
struct key_change {
  key_type key;
  container stored; // stripped, delete markers dropped; empty() means erase
};
struct apply_plan {
  std::vector<key_change> changes;
  std::vector<std::pair<dot, key_type>> new_dots;
  /// The sender's own clock entry, the only clock entry merged wholesale
  /// (set only for anti-entropy answers).
  std::optional<std::pair<replica_id, clock_entry>> sender_entry;
};

/// Step 2 at B: which keys and containers answer a peer's clock. Missing
/// dots are mapped to keys through the dot-key map and de-duplicated; each
/// key is sent as stored (stripped against B's clock), or as an empty
/// container if B no longer stores it, with the missing dots it resolves.
[[nodiscard]] std::vector<delta_entry>
plan_reply_entries(const node_clock& local_clock, const dot_key_map& dkm,
                   const container_source& store, const node_clock& peer_clock);

/// The change a received delta calls for. For each entry:
/// R = sync(fill(received, sender bases), fill(local, local clock)); when R
/// differs from the local filled container (the context counts, not only
/// the values) the plan stores strip(R) without delete markers, or erases
/// the key if nothing is left. Every dot of every received container joins
/// the clock and the dot-key map (its effect is captured by R either way),
/// and so does every resolved dot the received context covers.
/// With merge_sender_entry (anti-entropy answers only) the sender's own
/// clock entry is merged too; entries of third parties never are, because
/// this replica has not stored their effects.
[[nodiscard]] apply_plan plan_apply(const node_clock& local_clock,
                                    const container_source& store, const delta& d,
                                    bool merge_sender_entry);

/// Step 4 at A: plan_apply on B's answer, merging B's own entry.
[[nodiscard]] inline apply_plan plan_repair(const node_clock& local_clock,
                                            const container_source& store,
                                            const sync_reply& reply) {
  return plan_apply(local_clock, store, reply.changes, true);
}

/// The clock a plan leaves behind (local clock + new dots + sender entry).
[[nodiscard]] node_clock clock_after(const node_clock& local_clock, const apply_plan& plan);

} // namespace kith::causality
