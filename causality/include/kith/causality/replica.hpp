#pragma once

#include "kith/causality/anti_entropy.hpp"
#include "kith/causality/dot_key_map.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kith::causality {

/// What a reader sees of a key: the live sibling values and the context to
/// pass back so that a later write replaces all of them.
struct read_result {
  std::vector<std::string> values;
  version_vector context;
};

/// One replica of one replication group, entirely in memory: the node
/// clock, the stored containers, the dot-key map, the watermark and the set
/// of keys not yet stripped. The reference implementation of the scheme
/// (the node keeps the same pieces in RocksDB) and the simulator's NDC
/// replica. Not thread-safe: one owner.
class replica : public container_source {
public:
  explicit replica(replica_id self);

  [[nodiscard]] replica_id id() const { return self_; }
  /// The live members of the group, this replica included.
  void set_members(std::vector<replica_id> members);
  /// Removes a member from the watermark so pruning no longer waits for it.
  void retire(replica_id id);
  /// Closes a retired id's clock entry: its gaps (dots that never reached
  /// this replica) are declared lost and the base jumps to the highest dot
  /// of it held or named by a stored context, so contexts naming the id
  /// strip away. Precondition: the id is
  /// retired for good (its store is gone) and the live members have already
  /// exchanged what they hold of it; a dot of it arriving later is dropped.
  void close_retired(replica_id id);

  [[nodiscard]] read_result read(const key_type& k) const;
  /// A local write (value) or delete (tombstone sibling) replacing what
  /// `read_context` covers. Returns the delta to push to the members.
  delta write(const key_type& k, sibling s, const version_vector& read_context);
  delta put(const key_type& k, std::string v, const version_vector& ctx) {
    return write(k, sibling::value(std::move(v)), ctx);
  }
  delta erase(const key_type& k, const version_vector& ctx) {
    return write(k, sibling::tombstone(), ctx);
  }
  /// Receives writes pushed by another member.
  void receive(const delta& d);

  [[nodiscard]] sync_request make_request() const;
  [[nodiscard]] sync_reply answer(const sync_request& req);
  void apply(const sync_reply& reply);

  /// Re-strips the keys whose context is not yet empty; removes keys left
  /// with nothing. Returns how many keys became stripped.
  std::size_t restrip();
  /// A full-state snapshot for a new or returning peer: every stored key
  /// and this replica's clock. Applied with apply(); keys the receiver holds
  /// that the snapshot's clock covers and that it does not list are deleted
  /// by apply_snapshot.
  [[nodiscard]] sync_reply snapshot() const;
  void apply_snapshot(const sync_reply& snapshot);

  [[nodiscard]] std::optional<container> load(const key_type& k) const override;
  [[nodiscard]] const node_clock& clock() const { return clock_; }
  [[nodiscard]] const dot_key_map& dkm() const { return dkm_; }
  [[nodiscard]] const watermark& marks() const { return marks_; }
  [[nodiscard]] const std::map<key_type, container>& store() const { return store_; }
  [[nodiscard]] const std::set<key_type>& unstripped() const { return unstripped_; }

  /// Structural checks: clock normalised; own entry without gaps; stored
  /// containers stripped against the clock, without delete markers, never
  /// empty; the unstripped set exactly the keys with a context.
  [[nodiscard]] bool check_invariant() const;

private:
  void commit(const apply_plan& plan);
  void store_key(const key_change& c);
  void prune();

  replica_id self_;
  node_clock clock_;
  std::map<key_type, container> store_;
  dot_key_map dkm_;
  watermark marks_;
  std::set<key_type> unstripped_;
};

} // namespace kith::causality
