#pragma once

// Seeds for randomized tests. Every random choice in a test comes from a
// std::mt19937_64 seeded here; the seed is printed when a check fails
// (Catch's CAPTURE) so the case can be replayed with KITH_TEST_SEED.

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

namespace kith::test {

/// The base seed: KITH_TEST_SEED from the environment, or a fixed default
/// so CI runs are reproducible. Printed once per test binary.
inline std::uint64_t base_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = 20261122;
    if (const char* env = std::getenv("KITH_TEST_SEED"))
      s = std::strtoull(env, nullptr, 10);
    std::cerr << "kith tests: base seed " << s << " (set KITH_TEST_SEED to change)\n";
    return s;
  }();
  return seed;
}

/// Number of random cases per law: KITH_TEST_CASES or the given default.
inline int cases(int fallback) {
  if (const char* env = std::getenv("KITH_TEST_CASES"))
    return std::atoi(env);
  return fallback;
}

using rng = std::mt19937_64;

inline std::uint64_t pick(rng& g, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>{lo, hi}(g);
}
inline bool chance(rng& g, double p) {
  return std::bernoulli_distribution{p}(g);
}

} // namespace kith::test
