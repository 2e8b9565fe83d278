#pragma once

// Reproducible key seeds for the benchmarks: identities and channel
// ephemerals drawn from the printed seed's generator.

#include "kith/protocol/crypto.hpp"

#include <cstdint>
#include <random>

namespace kith::bench {

inline protocol::key_seed draw_key_seed(std::mt19937_64& g) {
  protocol::key_seed s{};
  for (auto& b : s)
    b = static_cast<std::uint8_t>(g());
  return s;
}

} // namespace kith::bench
