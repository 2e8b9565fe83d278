#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace kith::protocol {

/// A BLAKE2b-256 digest.
using hash256 = std::array<std::uint8_t, 32>;

/// BLAKE2b-256 of the concatenation of the given byte strings.
[[nodiscard]] hash256 hash_of(std::string_view a, std::string_view b = {},
                              std::string_view c = {});

/// An ed25519 public key: the identity of a person.
struct public_key {
  std::array<std::uint8_t, 32> bytes{};
  friend bool operator==(const public_key& a, const public_key& b) { return a.bytes == b.bytes; }
  friend bool operator!=(const public_key& a, const public_key& b) { return !(a == b); }
  friend bool operator<(const public_key& a, const public_key& b) { return a.bytes < b.bytes; }
  [[nodiscard]] std::string_view view() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
};

/// An ed25519 signature.
struct signature {
  std::array<std::uint8_t, 64> bytes{};
  friend bool operator==(const signature& a, const signature& b) { return a.bytes == b.bytes; }
  [[nodiscard]] std::string_view view() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
};

/// The 32-byte seed an ed25519 key pair is derived from.
using key_seed = std::array<std::uint8_t, 32>;

/// An ed25519 key pair. Generated from a seed so the simulator and tests
/// can make reproducible identities; the node draws the seed from the OS.
/// Holds secret material: never logged, wiped on destruction.
class identity {
public:
  /// The key pair derived from seed (crypto_sign_seed_keypair).
  [[nodiscard]] static identity from_seed(const key_seed& seed);
  /// A fresh key pair from the OS random source. Not for simulated paths.
  [[nodiscard]] static identity generate();

  identity(const identity&) = default;
  identity& operator=(const identity&) = default;
  ~identity();

  [[nodiscard]] const public_key& pub() const { return pk_; }
  [[nodiscard]] const key_seed& seed() const { return seed_; }
  /// Detached ed25519 signature of msg (~29k/s per core here).
  [[nodiscard]] signature sign(std::string_view msg) const;

private:
  identity() = default;
  key_seed seed_{};
  public_key pk_{};
  std::array<std::uint8_t, 64> sk_{};
};

/// Checks a detached signature (~11k/s per core here). With a memo in use
/// (use_verify_memo), a (key, message, signature) triple already found
/// good is not checked again.
[[nodiscard]] bool verify(const public_key& pk, std::string_view msg, const signature& sig);

/// Checks a signature over bytes signed once and checked once, such as a
/// handshake transcript: like verify(), but never consults or fills the
/// memo, where such an entry could only take the place of one that may
/// be asked for again.
[[nodiscard]] bool verify_once(const public_key& pk, std::string_view msg, const signature& sig);

/// Remembers the signatures verify() found good, by a BLAKE2b-128 digest of
/// key, signature and message, so the same signed bytes are checked once
/// per process rather than once per receiver. For the simulator, whose
/// nodes all receive the same signed batches: the answer of verify() is
/// the same with or without it (only good triples are kept, and any
/// change to a byte of the three changes the digest). Not thread-safe;
/// the node daemon never uses one. Forgets everything when full.
class verify_memo {
public:
  explicit verify_memo(std::size_t max_entries = 1u << 20) : max_entries_(max_entries) {}
  struct stats {
    std::uint64_t hits = 0;    // verify() answered from the memo
    std::uint64_t misses = 0;  // verify() ran ed25519
    std::uint64_t clears = 0;  // times the memo was full and forgot everything
    std::size_t entries = 0;
  };
  [[nodiscard]] stats figures() const;

private:
  friend bool verify(const public_key&, std::string_view, const signature&);
  struct digest {
    std::uint64_t lo = 0, hi = 0;
    friend bool operator==(const digest& a, const digest& b) { return a.lo == b.lo && a.hi == b.hi; }
  };
  struct digest_hash {
    std::size_t operator()(const digest& d) const { return static_cast<std::size_t>(d.lo); }
  };
  std::size_t max_entries_;
  std::unordered_set<digest, digest_hash> good_;
  stats stats_;
};

/// Makes verify() consult memo (nullptr: none, the default). The caller
/// keeps memo alive until it installs nullptr again.
void use_verify_memo(verify_memo* memo);

/// The copyable text form of an identity: "k" followed by 56 lowercase
/// base32 characters encoding the key and a 3-byte checksum, so a mistyped
/// or truncated id is caught before it is used.
[[nodiscard]] std::string to_text(const public_key& pk);
/// Parses the text form; on failure returns nullopt and says why in *why.
[[nodiscard]] std::optional<public_key> parse_id(std::string_view text, std::string* why = nullptr);

/// Lowercase hexadecimal of bytes.
[[nodiscard]] std::string to_hex(std::string_view bytes);

/// Initialises libsodium once; every entry point above calls it.
void ensure_sodium();

} // namespace kith::protocol
