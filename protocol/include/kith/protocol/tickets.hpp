#pragma once

// The resumption tickets one node holds: by peer for dialling it again, by
// ticket id for answering a peer that dials us. Thread-safe (the node's
// actors share one). docs/secure-channel.md, "Resumption".
//
// A node holds a few tickets per peer, tens in all, and the simulator
// holds a hundred thousand nodes' caches in one process: two hash tables
// per cache cost about 170 bytes a ticket (a table node each, a bucket,
// and the per-peer index). So a cache starts as one flat list in put
// order, 96 bytes a ticket, scanned on each lookup; past `small_limit`
// tickets (a relay with many clients) it moves to the hash tables for
// good. Both forms answer alike (the tests run each case in both).

#include "kith/protocol/channel.hpp"

#include <cstddef>
#include <cstdint>
#include <array>
#include <deque>
#include <unordered_map>
#include <utility>
#include <vector>
#include <mutex>
#include <optional>

namespace kith::protocol {

class ticket_cache {
public:
  using hash_key = std::array<std::uint8_t, 16>;
  /// Keeps at most `max_tickets` (the oldest goes first). A ticket is
  /// given out for at most `lifetime_ms` after the full handshake that
  /// began its chain (resumed_ticket::chain_started_ms). `key` keys the
  /// hash of the tables (SipHash): peers choose their identities, and
  /// must not be able to pile them into one bucket; keep it secret
  /// (derive it from a secret seed).
  /// `small_limit`: tickets kept in the flat list before the cache moves
  /// to hash tables (0: hash tables from the start).
  ticket_cache(std::size_t max_tickets, std::uint64_t lifetime_ms, const hash_key& key,
               std::size_t small_limit = default_small_limit);
  /// A linear scan of 256 tickets (24 KiB) is a microsecond or two, against
  /// about 120 us for the handshake that makes the lookup.
  static constexpr std::size_t default_small_limit = 256;
  ~ticket_cache();
  ticket_cache(const ticket_cache&) = delete;
  ticket_cache& operator=(const ticket_cache&) = delete;

  /// Tickets kept per peer. Two: when both ends dial at once, each end
  /// issues a ticket on both channels, perhaps in a different order, and
  /// keeping both lets the newest one either end picks be one the other
  /// still holds.
  static constexpr std::size_t per_peer = 2;

  /// Remembers the ticket a channel issued (the peer's oldest goes when it
  /// has per_peer already). Its chain starts now unless it carries the
  /// start of the chain it continues.
  void put(const resume_ticket& t, std::uint64_t now_ms);
  /// The newest ticket for dialling `peer`, removed: a ticket is used once.
  [[nodiscard]] std::optional<resume_ticket> take_for(const public_key& peer, std::uint64_t now_ms);
  /// The ticket a dialling peer named, removed.
  [[nodiscard]] std::optional<resume_ticket> take_id(const resume_ticket::ticket_id& id,
                                                     std::uint64_t now_ms);
  [[nodiscard]] std::size_t size() const;

private:
  using ticket_id = resume_ticket::ticket_id;
  // The ticket's fields but its id (the table's key), in 80 bytes: with
  // the table's own 32, each fits jemalloc's 112-byte class. The
  // simulator holds tens of them per node.
  struct entry {
    std::array<std::uint8_t, 32> secret{};
    public_key peer;
    std::uint64_t chain_started_ms = 0;
    std::uint64_t seq = 0; // put order: the smallest goes first when full
  };
  /// SipHash-2-4 of the bytes under the cache's key.
  struct keyed_hash {
    const hash_key* key = nullptr;
    std::size_t operator()(const ticket_id& id) const;
    std::size_t operator()(const public_key& k) const;
  };
  std::optional<resume_ticket> take_locked(const ticket_id& id, std::uint64_t now_ms);
  void erase_locked(ticket_id id); // by value: callers pass ids that live in the tables
  /// The ticket put first goes. The put order (order_) is made when the
  /// cache first fills (max_ tickets), which a node reaches only with
  /// that many peers and a relay with that many clients: a cache that
  /// never fills carries no queue. Until session 26 this scanned the
  /// whole table at every eviction, and a relay with 100,000 clients
  /// spent minutes doing that.
  void evict_oldest_locked();

  const std::size_t max_;
  const std::uint64_t lifetime_ms_;
  const hash_key key_;
  mutable std::mutex mu_;
  std::unordered_map<ticket_id, entry, keyed_hash> by_id_;
  /// Each peer's ids, oldest first (at most per_peer; the second slot is
  /// empty while `count` is 1).
  struct peer_ids {
    std::array<ticket_id, per_peer> ids{};
    std::uint8_t count = 0;
  };
  std::unordered_map<public_key, peer_ids, keyed_hash> by_peer_;
  /// Put order, for evicting the oldest: (seq, id), with entries of
  /// tickets already gone skipped (their seq no longer matches) and
  /// dropped in a compaction once they outnumber the live ones. Empty
  /// until the cache first fills (ordered).
  std::uint64_t next_seq_ = 0;
  bool ordered_ = false;
  std::deque<std::pair<std::uint64_t, ticket_id>> order_;
  void rebuild_order_locked();

  // The flat form (until the cache passes small_limit_): tickets in put
  // order, so the oldest is first and a peer's newest is its last.
  struct row {
    ticket_id id;
    entry e;
  };
  const std::size_t small_limit_;
  bool big_ = false; // the hash tables are in use (and flat_ is empty)
  std::vector<row> flat_;
  [[nodiscard]] std::size_t flat_find(const ticket_id& id) const; // flat_.size(): none
  void flat_erase(std::size_t i);   // wipes the secret and the slot left behind
  void flat_append(row r);          // grows by an eighth, wiping the old buffer
  void flat_fit();                  // gives back a buffer much larger than needed
  void go_big_locked();             // moves every ticket to the hash tables
  std::optional<resume_ticket> take_at_locked(std::size_t i, std::uint64_t now_ms);
  [[nodiscard]] std::optional<resume_ticket> give_locked(const ticket_id& id, const entry& e,
                                                         std::uint64_t now_ms) const;
};

} // namespace kith::protocol
