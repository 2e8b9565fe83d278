#include "kith/protocol/tickets.hpp"

#include <sodium.h>

#include <algorithm>

namespace kith::protocol {

namespace {

std::size_t siphash(const std::uint8_t* p, std::size_t n, const ticket_cache::hash_key& key) {
  static_assert(crypto_shorthash_BYTES == 8 && crypto_shorthash_KEYBYTES == 16);
  std::array<unsigned char, 8> h{};
  crypto_shorthash(h.data(), p, n, key.data());
  std::uint64_t v = 0;
  for (auto b : h)
    v = (v << 8) | b;
  return static_cast<std::size_t>(v);
}

} // namespace

std::size_t ticket_cache::keyed_hash::operator()(const ticket_id& id) const {
  return siphash(id.data(), id.size(), *key);
}
std::size_t ticket_cache::keyed_hash::operator()(const public_key& k) const {
  return siphash(k.bytes.data(), k.bytes.size(), *key);
}

ticket_cache::ticket_cache(std::size_t max_tickets, std::uint64_t lifetime_ms, const hash_key& key,
                           std::size_t small_limit)
    : max_(max_tickets), lifetime_ms_(lifetime_ms), key_(key), by_id_(0, keyed_hash{&key_}),
      by_peer_(0, keyed_hash{&key_}), small_limit_(small_limit), big_(small_limit == 0) {}

ticket_cache::~ticket_cache() {
  for (auto& [id, e] : by_id_)
    sodium_memzero(e.secret.data(), e.secret.size());
  for (auto& r : flat_)
    sodium_memzero(r.e.secret.data(), r.e.secret.size());
}

// --- the flat form ------------------------------------------------------------

std::size_t ticket_cache::flat_find(const ticket_id& id) const {
  for (std::size_t i = 0; i < flat_.size(); ++i)
    if (flat_[i].id == id)
      return i;
  return flat_.size();
}

void ticket_cache::flat_erase(std::size_t i) {
  sodium_memzero(flat_[i].e.secret.data(), flat_[i].e.secret.size());
  std::move(flat_.begin() + static_cast<std::ptrdiff_t>(i) + 1, flat_.end(),
            flat_.begin() + static_cast<std::ptrdiff_t>(i));
  // The last slot now repeats the row before it: wipe it before it goes.
  sodium_memzero(flat_.back().e.secret.data(), flat_.back().e.secret.size());
  flat_.pop_back();
  flat_fit();
}

namespace {
/// Moves rows into a buffer of `capacity` and wipes the secrets of the old
/// one before it is freed (rows are plain bytes: a move is a copy).
template <class Row>
void rebuffer(std::vector<Row>& rows, std::size_t capacity) {
  std::vector<Row> fresh;
  fresh.reserve(capacity);
  fresh.assign(rows.begin(), rows.end());
  for (auto& r : rows)
    sodium_memzero(r.e.secret.data(), r.e.secret.size());
  rows.swap(fresh);
}
} // namespace

void ticket_cache::flat_append(row r) {
  if (flat_.size() == flat_.capacity())
    rebuffer(flat_, flat_.size() + std::max<std::size_t>(2, flat_.size() / 8));
  flat_.push_back(r);
  sodium_memzero(r.e.secret.data(), r.e.secret.size());
}

void ticket_cache::flat_fit() {
  const auto n = flat_.size();
  if (flat_.capacity() > n + 2 * std::max<std::size_t>(2, n / 8) + 2) {
    if (n == 0)
      std::vector<row>().swap(flat_);
    else
      rebuffer(flat_, n + std::max<std::size_t>(2, n / 8));
  }
}

void ticket_cache::go_big_locked() {
  big_ = true;
  // In put order, so each peer's ids stay oldest first.
  for (auto& r : flat_) {
    by_id_.emplace(r.id, r.e);
    auto& slots = by_peer_[r.e.peer];
    slots.ids[slots.count++] = r.id;
    sodium_memzero(r.e.secret.data(), r.e.secret.size());
  }
  std::vector<row>().swap(flat_);
}

std::optional<resume_ticket> ticket_cache::give_locked(const ticket_id& id, const entry& e,
                                                       std::uint64_t now_ms) const {
  // A clock read before the ticket was put (a lookup set up when the
  // connection was accepted) counts as no time at all.
  const auto started = e.chain_started_ms;
  if (now_ms >= started && now_ms - started >= lifetime_ms_)
    return std::nullopt;
  std::optional<resume_ticket> t;
  t.emplace();
  t->id = id;
  t->secret = e.secret;
  t->peer = e.peer;
  t->chain_started_ms = started;
  return t;
}

std::optional<resume_ticket> ticket_cache::take_at_locked(std::size_t i, std::uint64_t now_ms) {
  auto t = give_locked(flat_[i].id, flat_[i].e, now_ms);
  flat_erase(i);
  return t;
}

// --- the hash tables ----------------------------------------------------------

void ticket_cache::erase_locked(ticket_id id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return;
  auto& e = it->second;
  if (auto p = by_peer_.find(e.peer); p != by_peer_.end()) {
    auto& slots = p->second;
    auto end = slots.ids.begin() + slots.count;
    if (auto at = std::find(slots.ids.begin(), end, id); at != end) {
      std::copy(at + 1, end, at); // keeps the oldest first
      --slots.count;
    }
    if (slots.count == 0)
      by_peer_.erase(p);
  }
  sodium_memzero(e.secret.data(), e.secret.size());
  by_id_.erase(it);
}

void ticket_cache::rebuild_order_locked() {
  order_.clear();
  for (const auto& [id, e] : by_id_)
    order_.emplace_back(e.seq, id);
  std::sort(order_.begin(), order_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  ordered_ = true;
}

void ticket_cache::evict_oldest_locked() {
  if (!ordered_ || order_.size() > 2 * by_id_.size() + 64)
    rebuild_order_locked(); // first fill, or mostly tickets already gone
  while (!order_.empty()) {
    const auto [seq, id] = order_.front();
    order_.pop_front();
    if (auto it = by_id_.find(id); it != by_id_.end() && it->second.seq == seq) {
      erase_locked(id);
      return;
    }
  }
}

void ticket_cache::put(const resume_ticket& t, std::uint64_t now_ms) {
  if (max_ == 0)
    return;
  std::lock_guard lock(mu_);
  if (!big_) {
    // As below, in the flat list: put order is seq order, so the oldest
    // ticket is first and a peer's oldest is its first.
    if (auto i = flat_find(t.id); i < flat_.size())
      flat_erase(i);
    std::size_t of_peer = 0, first = flat_.size();
    for (std::size_t i = 0; i < flat_.size(); ++i)
      if (flat_[i].e.peer == t.peer && of_peer++ == 0)
        first = i;
    if (of_peer >= per_peer)
      flat_erase(first);
    while (!flat_.empty() && flat_.size() >= max_)
      flat_erase(0);
    flat_append(row{t.id, entry{t.secret, t.peer, t.chain_started_ms.value_or(now_ms), next_seq_++}});
    if (flat_.size() > small_limit_)
      go_big_locked();
    return;
  }
  // Ids are 16 bytes of a hash of fresh session keys: a collision would
  // only make the older ticket unusable, never hand it to another peer.
  erase_locked(t.id);
  if (auto p = by_peer_.find(t.peer); p != by_peer_.end() && p->second.count >= per_peer)
    erase_locked(p->second.ids[0]);
  while (by_id_.size() >= max_)
    evict_oldest_locked();
  const auto seq = next_seq_++;
  by_id_.emplace(t.id, entry{t.secret, t.peer, t.chain_started_ms.value_or(now_ms), seq});
  if (ordered_)
    order_.emplace_back(seq, t.id);
  auto& slots = by_peer_[t.peer];
  slots.ids[slots.count++] = t.id;
}

std::optional<resume_ticket> ticket_cache::take_locked(const ticket_id& id, std::uint64_t now_ms) {
  if (!big_) {
    const auto i = flat_find(id);
    return i < flat_.size() ? take_at_locked(i, now_ms) : std::nullopt;
  }
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  auto t = give_locked(id, it->second, now_ms);
  erase_locked(id);
  return t;
}

std::optional<resume_ticket> ticket_cache::take_for(const public_key& peer, std::uint64_t now_ms) {
  std::lock_guard lock(mu_);
  // The newest first; one past its lifetime is dropped and the next tried.
  if (!big_) {
    for (auto i = flat_.size(); i-- > 0;) {
      if (!(flat_[i].e.peer == peer))
        continue;
      if (auto t = take_at_locked(i, now_ms))
        return t;
    }
    return std::nullopt;
  }
  for (auto p = by_peer_.find(peer); p != by_peer_.end(); p = by_peer_.find(peer)) {
    const ticket_id id = p->second.ids[p->second.count - 1];
    if (auto t = take_locked(id, now_ms))
      return t;
  }
  return std::nullopt;
}

std::optional<resume_ticket> ticket_cache::take_id(const ticket_id& id, std::uint64_t now_ms) {
  std::lock_guard lock(mu_);
  return take_locked(id, now_ms);
}

std::size_t ticket_cache::size() const {
  std::lock_guard lock(mu_);
  return big_ ? by_id_.size() : flat_.size();
}

} // namespace kith::protocol
