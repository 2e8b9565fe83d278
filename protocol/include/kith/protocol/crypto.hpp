#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

/// Checks a detached signature (~11k/s per core here).
[[nodiscard]] bool verify(const public_key& pk, std::string_view msg, const signature& sig);

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
