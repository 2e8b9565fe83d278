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

void tick_board::add(std::uint64_t at, const caf::actor_addr& who) {
  std::lock_guard lock(mu_);
  heap_.push_back(entry{at, who, next_seq_++});
  std::push_heap(heap_.begin(), heap_.end(), later{});
}

std::size_t tick_board::fire(std::uint64_t now) {
  std::size_t sent = 0;
  for (;;) {
    caf::actor_addr who;
    std::uint64_t at = 0;
    {
      std::lock_guard lock(mu_);
      if (heap_.empty() || heap_.front().at > now) {
        if (heap_.capacity() > 64 && heap_.size() < heap_.capacity() / 4)
          heap_.shrink_to_fit();
        break;
      }
      std::pop_heap(heap_.begin(), heap_.end(), later{});
      who = std::move(heap_.back().who);
      at = heap_.back().at;
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
