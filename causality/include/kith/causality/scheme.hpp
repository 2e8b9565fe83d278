#pragma once

#include "kith/causality/codec.hpp"
#include "kith/causality/types.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::causality {

/// The causality schemes the simulator compares on one workload.
enum class scheme_kind {
  ndc = 0, ///< node-wide dot clocks: stripped containers, no tombstones, dot-based anti-entropy
  dvv = 1, ///< per-key dotted version vectors, tombstones kept, Merkle anti-entropy
  vv = 2,  ///< per-key plain version vectors (server ids), tombstones kept, Merkle anti-entropy
};

[[nodiscard]] std::string_view to_string(scheme_kind k);
[[nodiscard]] std::optional<scheme_kind> parse_scheme(std::string_view name);

struct scheme_options {
  /// Merkle baselines: leaves (segments) of the tree over the key space and
  /// the fan-out of its inner nodes. leaves must be a power of fanout.
  std::size_t merkle_leaves = 1u << 12;
  std::size_t merkle_fanout = 16;
};

/// One message between two replicas of a group, with its size split.
struct message {
  std::string bytes;
  byte_split split;
};

/// What a read returns: live values (sorted) and an opaque context to pass
/// back to write() so that it replaces them.
struct scheme_read {
  std::vector<std::string> values;
  std::string context;
};

/// Storage-side figures of one replica.
struct scheme_stats {
  std::uint64_t keys = 0;            ///< keys held in storage, tombstones included
  std::uint64_t tombstones = 0;      ///< keys held only to remember a delete
  std::uint64_t key_meta_bytes = 0;  ///< causality metadata stored with keys, summed
  std::uint64_t node_meta_bytes = 0; ///< per-replica metadata (clock, dot-key map, watermark; Merkle leaves)
  std::uint64_t data_bytes = 0;      ///< value bytes stored
};

/// What one replica holds of one write: an inspection for the experiments
/// (sim/experiments/), which measure repair and strip latencies with it.
struct write_trace {
  /// The write's effect is stored here: it is held, or a write that
  /// superseded it (or the key's context covering it) is.
  bool seen = false;
  /// Seen, and the key's stored causal context is empty (an absent key
  /// counts): beyond the dot of a value still held, the key carries nothing
  /// about its history. NDC only; always false for the baselines, whose
  /// per-key version vector keeps an entry for every writer for good.
  bool key_meta_gone = false;
  /// Seen, and no per-replica index still lists the write (NDC: its dot is
  /// pruned from the dot-key map). True once seen for the baselines, which
  /// keep no per-write index.
  bool node_meta_gone = false;
};

/// One replica of one replication group under some causality scheme. All
/// messages are encoded bytes, so their sizes are what a wire would carry.
/// Pull-based anti-entropy: A calls sync_start(), sends the message to B;
/// each side passes what it receives to sync_step() and sends back what it
/// returns, until sync_step() returns nullopt. Messages carry all session
/// state, so a replica may run several sessions at once. Bad bytes make
/// deliver()/sync_step() return false/nullopt and change nothing.
class replica_scheme {
public:
  virtual ~replica_scheme() = default;
  [[nodiscard]] virtual scheme_kind kind() const = 0;
  [[nodiscard]] virtual replica_id id() const = 0;
  /// The live members of the group (this replica may or may not be listed).
  virtual void set_members(std::vector<replica_id> members) = 0;
  /// A member left for good (or lost its store and came back under a new id).
  virtual void retire(replica_id member) = 0;

  [[nodiscard]] virtual scheme_read read(const key_type& k) const = 0;
  /// A local write (value) or delete (nullopt) replacing what `context`
  /// (from read()) covers. Returns the message to push to every member.
  virtual message write(const key_type& k, std::optional<std::string> value,
                        const std::string& context) = 0;
  /// A write pushed by another member.
  virtual bool deliver(const message& m) = 0;

  [[nodiscard]] virtual message sync_start() = 0;
  virtual std::optional<message> sync_step(const message& m) = 0;
  /// Inspection (experiments and tests only). The name of the last write()
  /// made here, opaque (an encoded version vector: the write's dot for ndc
  /// and dvv, its whole vector for vv); empty before the first write.
  [[nodiscard]] virtual std::string last_write() const = 0;
  /// Inspection: what this replica holds of write `w` (a last_write() of
  /// its origin) on key k. Costs a key lookup. A `w` that does not decode
  /// is reported unseen.
  [[nodiscard]] virtual write_trace trace(const key_type& k, const std::string& w) const = 0;

  /// Periodic maintenance (re-stripping for NDC).
  virtual void tick() = 0;

  [[nodiscard]] virtual scheme_stats stats() const = 0;
  /// Every key with live values -> its sorted live values.
  [[nodiscard]] virtual std::map<key_type, std::vector<std::string>> contents() const = 0;
};

[[nodiscard]] std::unique_ptr<replica_scheme>
make_scheme(scheme_kind kind, replica_id self, const scheme_options& opts = {});

namespace detail {
std::unique_ptr<replica_scheme> make_ndc_scheme(replica_id self, const scheme_options& opts);
std::unique_ptr<replica_scheme> make_dvv_scheme(replica_id self, const scheme_options& opts);
std::unique_ptr<replica_scheme> make_vv_scheme(replica_id self, const scheme_options& opts);
} // namespace detail

} // namespace kith::causality
