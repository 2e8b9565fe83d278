#pragma once

// Signed reachability records and rendezvous keys: the two pieces of the
// relay protocol a client computes on its own. Pure functions; no state.
// docs/relay-protocol.md gives the exact signed encoding.

#include "kith/protocol/crypto.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kith::relay {

/// "Identity `id` can be reached at `addresses` until `expiry_ms`."
/// Signed by `id` itself, so a relay can store and serve it but not forge
/// or alter it. `seq` orders two records of the same identity (from two
/// relays, or a renewal): the higher one is newer.
struct signed_record {
  protocol::public_key id;
  std::vector<std::string> addresses;
  std::uint64_t expiry_ms = 0; // unix time, ms
  std::uint64_t seq = 0;
  protocol::signature sig;

  friend bool operator==(const signed_record& a, const signed_record& b) {
    return a.id == b.id && a.addresses == b.addresses && a.expiry_ms == b.expiry_ms &&
           a.seq == b.seq && a.sig == b.sig;
  }
  friend bool operator!=(const signed_record& a, const signed_record& b) { return !(a == b); }
};

/// The domain string that starts every signed record encoding: a record
/// signature can never be replayed as any other kith signature.
inline constexpr std::string_view record_domain = "kith-relay-record/v1";

/// The exact bytes a record's signature covers: record_domain, a NUL, the
/// 32-byte id, seq and expiry_ms as 8-byte big-endian, the address count as
/// 4-byte big-endian, then each address as a 4-byte big-endian length and
/// its bytes. Unambiguous: no two records share an encoding.
[[nodiscard]] std::string record_signing_bytes(const signed_record& r);

/// A record for `self`, signed by it (one ed25519 signature, ~35 µs).
[[nodiscard]] signed_record make_record(const protocol::identity& self,
                                        std::vector<std::string> addresses,
                                        std::uint64_t expiry_ms, std::uint64_t seq);

/// True when r.sig is r.id's signature over record_signing_bytes(r). Does
/// not look at the time: callers compare expiry_ms with their clock.
/// One ed25519 verification (~90 µs).
[[nodiscard]] bool verify_record(const signed_record& r);

/// The domain of rendezvous_key.
inline constexpr std::string_view rendezvous_domain = "kith-relay-rendezvous/v1";

/// The 32-byte topic key for a rendezvous name: BLAKE2b-256 of
/// rendezvous_domain and the name. Clients that join and look up this key
/// instead of the name itself meet each other without the relay learning
/// the name (it can still test guesses; see docs/relay-protocol.md).
[[nodiscard]] std::string rendezvous_key(std::string_view name);

} // namespace kith::relay
