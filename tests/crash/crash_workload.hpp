#pragma once

// The workload of the crash test, shared by the writer (which commits it)
// and the test (which recomputes what the store must hold). Step i is one
// store::write: it inserts document i (three keys) and, every few steps,
// overwrites or deletes an earlier document in the same batch. Everything
// written is a pure function of (seed, i), so the checker needs nothing
// from the writer but the numbers of the steps it acknowledged.

#include "kith/protocol/crypto.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kith::crash {

/// The writer's replica nonce: fixed so the test knows the replica id.
inline constexpr std::uint64_t replica_nonce = 0x6b697468'63726173ULL;

/// Predicates of one document.
inline constexpr const char* predicates[] = {"text", "n", "tail"};

inline std::uint64_t mix(std::uint64_t x) { // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// A deterministic draw for step i of a run with this seed.
inline std::uint64_t draw(std::uint64_t seed, std::uint64_t i, std::uint64_t salt) {
  return mix(mix(seed ^ 0x63726173686b6974ULL) ^ mix(i * 0x100000001b3ULL + salt));
}

/// The writer's identity: derived from the seed.
inline protocol::identity identity_for(std::uint64_t seed) {
  protocol::key_seed s{};
  const std::uint64_t x = mix(seed);
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<std::uint8_t>(x >> (8 * i));
  s[31] = 0xc7;
  return protocol::identity::from_seed(s);
}

/// The write time of step i (ms).
inline std::uint64_t time_of(std::uint64_t i) { return 1'600'000'000'000ULL + i; }

/// "<owner>/statuses/<i>\0<pred>": a post, so the indexes get rows.
inline std::string key_of(const std::string& owner, std::uint64_t i, const char* pred) {
  std::string k = owner + "/statuses/" + std::to_string(i);
  k.push_back('\0');
  k += pred;
  return k;
}

/// One op of a step: a value (JSON) or a delete (nullopt). The writer adds
/// the read context; ops are committed in this order (dot n is op n).
struct step_op {
  std::string key;
  std::optional<std::string> value;
};

inline std::string hex_pad(std::uint64_t seed, std::uint64_t i, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n);
  std::uint64_t x = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (k % 16 == 0)
      x = draw(seed, i, 1000 + k);
    s.push_back(digits[x & 15]);
    x >>= 4;
  }
  return s;
}

/// The ops of step i (i >= 1) for the writer `owner` (its id's text form).
inline std::vector<step_op> step_ops(const std::string& owner, std::uint64_t seed,
                                     std::uint64_t i) {
  static const char* const words[] = {"Cats", "rain", "kith", "p2p", "Tea", "night", "x_1"};
  std::vector<step_op> ops;
  const std::uint64_t a = draw(seed, i, 1);
  const std::string is = std::to_string(i);
  // Document i: text with one or two hashtags, a number, a padded object.
  std::string text = "post " + is + " about #" + words[a % 7];
  if ((a >> 8) % 3 == 0)
    text += " and #t" + std::to_string((a >> 16) % 13);
  ops.push_back({key_of(owner, i, "text"), "\"" + text + "\""});
  ops.push_back({key_of(owner, i, "n"), is});
  ops.push_back({key_of(owner, i, "tail"),
                 "{\"i\":" + is + ",\"pad\":\"" + hex_pad(seed, i, 16 + (a >> 24) % 600) + "\"}"});
  // Every few steps: overwrite or delete an earlier document j (which may
  // itself have been deleted: then an overwrite re-creates it, a delete
  // changes nothing but still issues its dots).
  const std::uint64_t b = draw(seed, i, 2);
  if (i > 1 && b % 4 == 0) {
    const std::uint64_t j = 1 + (b >> 8) % (i - 1);
    const std::string js = std::to_string(j);
    if ((b >> 40) % 3 == 0) {
      for (const char* p : predicates)
        ops.push_back({key_of(owner, j, p), std::nullopt});
    } else {
      ops.push_back({key_of(owner, j, "text"),
                     "\"post " + js + " edited at " + is + " #edited #" + words[(b >> 48) % 7] +
                         "\""});
      ops.push_back({key_of(owner, j, "tail"),
                     "{\"i\":" + js + ",\"edit\":" + is + "}"});
    }
  }
  return ops;
}

} // namespace kith::crash
