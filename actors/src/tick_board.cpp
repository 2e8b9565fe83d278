#include "tick_board.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>

namespace kith::actors::detail {

tick_board::tick_board(std::uint64_t origin_ms, std::uint64_t period_ms)
    : origin_(origin_ms), period_(std::max<std::uint64_t>(1, period_ms)) {}

std::uint64_t tick_board::point_at_or_after(std::uint64_t t) const {
  return grid_point_at_or_after(origin_, period_, t);
}

std::uint32_t tick_board::slot_of(std::uint64_t t) const {
  const auto k = (point_at_or_after(t) - origin_) / period_;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(k, UINT32_MAX));
}

void tick_board::add(std::uint64_t at, const caf::actor_addr& who) {
  const auto slot = slot_of(at);
  std::lock_guard lock(mu_);
  heap_.push_back(entry{who, slot, next_seq_++});
  std::push_heap(heap_.begin(), heap_.end(), later{});
}

std::size_t tick_board::fire(std::uint64_t now) {
  std::size_t sent = 0;
  for (;;) {
    caf::actor_addr who;
    std::uint64_t at = 0;
    {
      std::lock_guard lock(mu_);
      if (heap_.empty() || origin_ + std::uint64_t{heap_.front().slot} * period_ > now) {
        if (heap_.capacity() > 64 && heap_.size() < heap_.capacity() / 4)
          heap_.shrink_to_fit();
        break;
      }
      std::pop_heap(heap_.begin(), heap_.end(), later{});
      who = std::move(heap_.back().who);
      at = origin_ + std::uint64_t{heap_.back().slot} * period_;
      heap_.pop_back();
    }
    if (auto a = caf::actor_cast<caf::actor>(who)) { // else ended meanwhile
      caf::anon_send(a, tick_atom::value, at);
      ++sent;
    }
  }
  return sent;
}

std::size_t tick_board::size() const {
  std::lock_guard lock(mu_);
  return heap_.size();
}

} // namespace kith::actors::detail
