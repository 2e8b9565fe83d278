#pragma once

// One node's timers for its peer and topic actors.
//
// Each such actor used to keep its next tick as a delayed message in CAF's
// clock: a mailbox element, an event and a tree node, about 210 bytes per
// actor at all times (a fifth of what a peer actor itself costs), or about
// 4% of the simulator's memory. The node actor ticks every
// sync_settings::tick anyway, so the actors put their next tick on its
// grid here instead (24 bytes each) and the node's tick sends the ticks
// that are due. A tick comes at the same grid points as before; only the
// grid's phase is the node's (its start) rather than each actor's.
// docs/architecture.md, "Timers".

#include "kith/actors/interfaces.hpp"

#include <caf/actor_addr.hpp>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace kith::actors::detail {

/// The first point of the grid origin_ms + k * period_ms (k >= 0) at or
/// after `t`; period_ms must be at least 1. Shared by the board and by an
/// actor that keeps its own timer (no node).
[[nodiscard]] constexpr std::uint64_t grid_point_at_or_after(std::uint64_t origin_ms,
                                                             std::uint64_t period_ms,
                                                             std::uint64_t t) {
  return t <= origin_ms ? origin_ms
                        : origin_ms + (t - origin_ms + period_ms - 1) / period_ms * period_ms;
}

class tick_board {
public:
  /// Grid points are origin_ms + k * period_ms (the node actor's ticks).
  tick_board(std::uint64_t origin_ms, std::uint64_t period_ms);

  /// The first grid point at or after `t`.
  [[nodiscard]] std::uint64_t point_at_or_after(std::uint64_t t) const;

  /// (tick_atom, point) reaches `who` at the node's first tick at or after
  /// `at`, the point being that tick's (point_at_or_after(at): `at` itself
  /// for the grid points callers pass). `who` is held weakly: an actor that ends meanwhile is freed at
  /// once and skipped. Any thread may call this.
  void add(std::uint64_t at, const caf::actor_addr& who);

  /// Sends every tick due by `now`, in order of (at, order added); the
  /// node actor calls this at each of its ticks. Takes the lock once per
  /// entry and sends outside it, so it needs no list of its own (a
  /// scratch list kept per node would cost more memory at 100,000 nodes
  /// than its allocations cost time). Returns how many it sent.
  std::size_t fire(std::uint64_t now);

  /// Ticks waiting (ended actors' included until their point comes).
  [[nodiscard]] std::size_t size() const;

private:
  // 16 bytes: the point as its index on the grid (32 bits: 136 years of
  // 1 s ticks; a point further out is kept at the last index, i.e. never
  // fires), the order added, the actor. Session 27's 24-byte entry held
  // the point in full.
  struct entry {
    caf::actor_addr who;
    std::uint32_t slot;
    // Ties at one point go in the order added. 32 bits that wrap: compared
    // as a distance, which is right while fewer than 2^31 ticks wait.
    std::uint32_t seq;
  };
  static_assert(sizeof(entry) == 16, "a board entry is 16 bytes (one per waiting tick)");
  struct later {
    bool operator()(const entry& a, const entry& b) const {
      return a.slot != b.slot ? a.slot > b.slot : a.seq - b.seq < 0x8000'0000u && a.seq != b.seq;
    }
  };
  [[nodiscard]] std::uint32_t slot_of(std::uint64_t t) const;
  const std::uint64_t origin_;
  const std::uint64_t period_;
  mutable std::mutex mu_;
  std::vector<entry> heap_; // a min-heap under `later`
  std::uint32_t next_seq_ = 0;
};

} // namespace kith::actors::detail
