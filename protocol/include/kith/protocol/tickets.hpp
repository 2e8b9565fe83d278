#pragma once

// The resumption tickets one node holds: by peer for dialling it again, by
// ticket id for answering a peer that dials us. Thread-safe (the node's
// actors share one). docs/secure-channel.md, "Resumption".

#include "kith/protocol/channel.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace kith::protocol {

class ticket_cache {
public:
  /// Keeps at most `max_tickets` (the oldest goes first), each for at most
  /// `lifetime_ms` after it was issued.
  ticket_cache(std::size_t max_tickets, std::uint64_t lifetime_ms);
  ~ticket_cache();
  ticket_cache(const ticket_cache&) = delete;
  ticket_cache& operator=(const ticket_cache&) = delete;

  /// Tickets kept per peer. Two: when both ends dial at once, each end
  /// issues a ticket on both channels, perhaps in a different order, and
  /// keeping both lets the newest one either end picks be one the other
  /// still holds.
  static constexpr std::size_t per_peer = 2;

  /// Remembers the ticket a channel issued (the peer's oldest goes when it
  /// has per_peer already).
  void put(const resume_ticket& t, std::uint64_t now_ms);
  /// The newest ticket for dialling `peer`, removed: a ticket is used once.
  [[nodiscard]] std::optional<resume_ticket> take_for(const public_key& peer, std::uint64_t now_ms);
  /// The ticket a dialling peer named, removed.
  [[nodiscard]] std::optional<resume_ticket> take_id(const resume_ticket::ticket_id& id,
                                                     std::uint64_t now_ms);
  [[nodiscard]] std::size_t size() const;

private:
  using ticket_id = resume_ticket::ticket_id;
  struct entry {
    resume_ticket ticket;
    std::uint64_t issued_ms = 0;
    std::uint64_t seq = 0;
  };
  std::optional<resume_ticket> take_locked(const ticket_id& id, std::uint64_t now_ms);
  void erase_locked(const ticket_id& id);

  const std::size_t max_;
  const std::uint64_t lifetime_ms_;
  mutable std::mutex mu_;
  std::map<ticket_id, entry> by_id_;
  std::map<public_key, std::vector<ticket_id>> by_peer_; // oldest first
  std::map<std::uint64_t, ticket_id> by_age_;            // seq -> id, oldest first
  std::uint64_t next_seq_ = 0;
};

} // namespace kith::protocol
