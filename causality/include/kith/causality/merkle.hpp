#pragma once

// The Merkle-tree anti-entropy shared by the two baseline schemes (dvv and
// vv): a hash tree over the key space, and `merkle_replica`, the part of a
// baseline replica that frames messages and drives the pull sessions. The
// schemes themselves (scheme_dvv.cpp, scheme_vv.cpp) only say how one key's
// state is encoded, decoded and merged.

#include "kith/causality/codec.hpp"
#include "kith/causality/scheme.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::causality {

/// A 64-bit hash of bytes: FNV-1a followed by the splitmix64 finaliser, so
/// that every input bit reaches every output bit. Not cryptographic.
[[nodiscard]] std::uint64_t merkle_hash(std::string_view bytes);

/// Combines two 64-bit hashes into one; not symmetric in its arguments.
[[nodiscard]] std::uint64_t merkle_mix(std::uint64_t a, std::uint64_t b);

/// A Merkle tree over the key space with a fixed shape: `leaves` segments
/// (a key falls in segment hash(key) mod leaves) under inner nodes of
/// `fanout` children. Level 0 is the root, level depth() the leaves; level
/// L has fanout^L nodes. A leaf's hash is the XOR of its keys'
/// contributions, so a write updates it in O(1) (toggle the old
/// contribution out and the new one in). Inner hashes are a cache rebuilt
/// on demand, only along the paths of leaves changed since the last query.
///
/// Hashes are 8 bytes, in memory and on the wire. Real deployments use
/// 16-32-byte cryptographic hashes (collisions, forged data); 8 bytes keeps
/// the baseline's sync metadata as small as it can plausibly be, so the
/// comparison with NDC favours the baseline.
///
/// Not thread-safe, even for const calls (the inner cache is mutable).
class merkle_tree {
public:
  /// Upper bound on leaves, so that a tree never costs more than 128 MiB.
  static constexpr std::size_t max_leaves = std::size_t{1} << 24;

  /// Throws std::invalid_argument unless fanout >= 2 and leaves is
  /// fanout^d for some d >= 1 with leaves <= max_leaves.
  merkle_tree(std::size_t leaves, std::size_t fanout);

  [[nodiscard]] std::size_t leaves() const { return leaves_.size(); }
  [[nodiscard]] std::size_t fanout() const { return fanout_; }
  /// Levels below the root: the leaves sit at level depth() >= 1.
  [[nodiscard]] std::size_t depth() const { return depth_; }
  /// Nodes at a level (level <= depth()).
  [[nodiscard]] std::size_t nodes_at(std::size_t level) const;
  /// The segment a key with this hash belongs to.
  [[nodiscard]] std::size_t leaf_of(std::uint64_t key_hash) const { return key_hash % leaves(); }

  /// XORs a contribution into a leaf (adds it, or removes it if present).
  void toggle(std::size_t leaf, std::uint64_t contribution);

  /// The hash of node `index` at `level`; both must be in range.
  [[nodiscard]] std::uint64_t hash(std::size_t level, std::size_t index) const;
  [[nodiscard]] std::uint64_t root() const { return hash(0, 0); }

private:
  void refresh() const;
  [[nodiscard]] std::uint64_t combine(std::size_t level, std::size_t index) const;

  std::size_t fanout_;
  std::size_t depth_ = 0;
  std::vector<std::uint64_t> leaves_;
  mutable std::vector<std::vector<std::uint64_t>> inner_; // inner_[L], L < depth_
  mutable std::vector<std::size_t> dirty_;                // leaves changed since refresh
  mutable std::vector<bool> dirty_mark_;
};

/// The part shared by the Merkle baselines: key index and tree, push
/// framing, and the pull session. Derived schemes own the per-key state
/// and report every change of it through note_stored().
///
/// Wire format: every message starts with a type byte and a scheme byte
/// (the scheme_kind). A pull, A pulling from B, runs as:
///   A: root      [leaves, fanout, root hash]
///   B: in_sync   (roots equal; A's sync_step then returns nullopt), or
///      nodes     [level L, node indices, fanout child hashes of each]
///   A: descend   [level L+1, indices of the children that differ], or at
///                the leaf level
///      digests   [per differing leaf: (key hash, object hash) of A's keys]
///   B: objects   [key + state of B's keys in those leaves that A lacks or
///                holds with another object hash]
///   A: merges the objects; sync_step returns nullopt.
/// A push is [key, state]. Hashes are 8 raw bytes (little-endian), counts
/// and indices LEB128 varints. Bytes a reader rejects change nothing.
///
/// Byte accounting: key and value bytes are data; key lengths and the
/// scheme's per-key metadata are key_meta; type bytes, counts, levels,
/// indices and hashes are sync_meta.
class merkle_replica : public replica_scheme {
public:
  [[nodiscard]] scheme_kind kind() const final { return kind_; }
  [[nodiscard]] replica_id id() const final { return self_; }
  /// Recorded only: the Merkle pull needs no membership.
  void set_members(std::vector<replica_id> members) final;
  void retire(replica_id member) final;

  bool deliver(const message& m) final;
  [[nodiscard]] message sync_start() final;
  std::optional<message> sync_step(const message& m) final;
  void tick() final {}

  [[nodiscard]] scheme_stats stats() const final;

  [[nodiscard]] const merkle_tree& tree() const { return tree_; }
  [[nodiscard]] const std::vector<replica_id>& members() const { return members_; }

protected:
  /// Throws std::invalid_argument on a bad tree shape (see merkle_tree).
  merkle_replica(scheme_kind kind, replica_id self, const scheme_options& opts);

  /// A decoded object waiting to be merged into the store.
  using pending_merge = std::function<void()>;

  /// Appends the canonical encoding of stored key k's state (equal states
  /// must encode equally) and returns how many of the bytes appended are
  /// value bytes. k must be stored.
  virtual std::uint64_t encode_object(const key_type& k, writer& w) const = 0;
  /// Reads one object for key k from r and changes nothing yet: returns
  /// the merge to run once the whole message is known good (it may call
  /// note_stored), or an empty function when the bytes are malformed.
  /// Non-const only because the returned merge mutates this replica.
  [[nodiscard]] virtual pending_merge decode_object(const key_type& k, reader& r) = 0;

  /// To be called after every change to a stored key: re-encodes it,
  /// updates its leaf hash and the storage totals. `live`: it holds at
  /// least one live value.
  void note_stored(const key_type& k, bool live);
  /// The push message carrying stored key k's whole state.
  [[nodiscard]] message make_push(const key_type& k) const;
  [[nodiscard]] const decode_limits& limits() const { return limits_; }

private:
  struct key_record {
    std::uint64_t key_hash = 0;
    std::uint64_t object_hash = 0;
    std::uint64_t meta_bytes = 0; // encoded state size minus value bytes
    std::uint64_t data_bytes = 0; // value bytes
    bool live = false;
  };

  [[nodiscard]] std::optional<message> reply_root(reader& r) const;
  [[nodiscard]] std::optional<message> on_nodes(reader& r) const;
  [[nodiscard]] std::optional<message> reply_descend(reader& r) const;
  [[nodiscard]] std::optional<message> reply_digests(reader& r) const;
  [[nodiscard]] bool merge_objects(reader& r);
  [[nodiscard]] message nodes_message(std::size_t level,
                                      const std::vector<std::size_t>& indices) const;
  void header(writer& w, std::uint8_t type) const;

  scheme_kind kind_;
  replica_id self_;
  std::vector<replica_id> members_;
  merkle_tree tree_;
  decode_limits limits_;
  std::vector<std::map<key_type, key_record>> index_; // per leaf
  std::uint64_t keys_ = 0;
  std::uint64_t tombstones_ = 0;
  std::uint64_t meta_bytes_ = 0;
  std::uint64_t data_bytes_ = 0;
};

} // namespace kith::causality
