#include "kith/protocol/tickets.hpp"

#include <sodium.h>

#include <algorithm>

namespace kith::protocol {

ticket_cache::ticket_cache(std::size_t max_tickets, std::uint64_t lifetime_ms)
    : max_(max_tickets), lifetime_ms_(lifetime_ms) {}

ticket_cache::~ticket_cache() {
  for (auto& [id, e] : by_id_)
    sodium_memzero(e.ticket.secret.data(), e.ticket.secret.size());
}

void ticket_cache::erase_locked(const ticket_id& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return;
  auto& e = it->second;
  if (auto p = by_peer_.find(e.ticket.peer); p != by_peer_.end()) {
    auto& ids = p->second;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    if (ids.empty())
      by_peer_.erase(p);
  }
  by_age_.erase(e.seq);
  sodium_memzero(e.ticket.secret.data(), e.ticket.secret.size());
  by_id_.erase(it);
}

void ticket_cache::put(const resume_ticket& t, std::uint64_t now_ms) {
  if (max_ == 0)
    return;
  std::lock_guard lock(mu_);
  // Ids are 16 bytes of a hash of fresh session keys: a collision would
  // only make the older ticket unusable, never hand it to another peer.
  erase_locked(t.id);
  if (auto p = by_peer_.find(t.peer); p != by_peer_.end() && p->second.size() >= per_peer)
    erase_locked(p->second.front());
  while (by_id_.size() >= max_)
    erase_locked(by_age_.begin()->second);
  auto seq = next_seq_++;
  by_id_.emplace(t.id, entry{t, now_ms, seq});
  by_peer_[t.peer].push_back(t.id);
  by_age_.emplace(seq, t.id);
}

std::optional<resume_ticket> ticket_cache::take_locked(const ticket_id& id, std::uint64_t now_ms) {
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  std::optional<resume_ticket> t;
  const auto issued = it->second.issued_ms;
  if (now_ms >= issued && now_ms - issued < lifetime_ms_)
    t = it->second.ticket;
  erase_locked(id);
  return t;
}

std::optional<resume_ticket> ticket_cache::take_for(const public_key& peer, std::uint64_t now_ms) {
  std::lock_guard lock(mu_);
  auto p = by_peer_.find(peer);
  if (p == by_peer_.end())
    return std::nullopt;
  // The newest first; one past its lifetime is dropped and the next tried.
  while (p != by_peer_.end()) {
    const ticket_id id = p->second.back();
    if (auto t = take_locked(id, now_ms))
      return t;
    p = by_peer_.find(peer);
  }
  return std::nullopt;
}

std::optional<resume_ticket> ticket_cache::take_id(const ticket_id& id, std::uint64_t now_ms) {
  std::lock_guard lock(mu_);
  return take_locked(id, now_ms);
}

std::size_t ticket_cache::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

} // namespace kith::protocol
