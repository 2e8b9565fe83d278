#include "kith/protocol/crypto.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace kith::protocol {

namespace {

constexpr char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::size_t id_checksum_bytes = 3;
constexpr std::size_t id_text_chars = 1 + (32 + id_checksum_bytes) * 8 / 5; // 57

std::array<std::uint8_t, id_checksum_bytes> id_checksum(const public_key& pk) {
  hash256 h = hash_of("kith/id-checksum/v1", pk.view());
  return {h[0], h[1], h[2]};
}

verify_memo* memo_in_use = nullptr;

} // namespace

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok)
    throw std::runtime_error("libsodium failed to initialise");
}

hash256 hash_of(std::string_view a, std::string_view b, std::string_view c) {
  ensure_sodium();
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  for (auto part : {a, b, c})
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size());
  hash256 out;
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

identity identity::from_seed(const key_seed& seed) {
  ensure_sodium();
  identity id;
  id.seed_ = seed;
  crypto_sign_seed_keypair(id.pk_.bytes.data(), id.sk_.data(), seed.data());
  return id;
}

identity identity::generate() {
  ensure_sodium();
  key_seed seed;
  randombytes_buf(seed.data(), seed.size());
  identity id = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return id;
}

identity::~identity() {
  sodium_memzero(seed_.data(), seed_.size());
  sodium_memzero(sk_.data(), sk_.size());
}

signature identity::sign(std::string_view msg) const {
  signature s;
  crypto_sign_detached(s.bytes.data(), nullptr, reinterpret_cast<const unsigned char*>(msg.data()),
                       msg.size(), sk_.data());
  return s;
}

bool verify_once(const public_key& pk, std::string_view msg, const signature& sig) {
  ensure_sodium();
  return crypto_sign_verify_detached(sig.bytes.data(), reinterpret_cast<const unsigned char*>(msg.data()),
                                     msg.size(), pk.bytes.data()) == 0;
}

bool verify(const public_key& pk, std::string_view msg, const signature& sig) {
  auto check = [&] { return verify_once(pk, msg, sig); };
  verify_memo* memo = memo_in_use;
  if (memo == nullptr)
    return check();
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 16);
  for (auto part : {pk.view(), sig.view(), msg})
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size());
  std::array<unsigned char, 16> out;
  crypto_generichash_final(&st, out.data(), out.size());
  verify_memo::digest d;
  std::memcpy(&d.lo, out.data(), 8);
  std::memcpy(&d.hi, out.data() + 8, 8);
  if (memo->good_.count(d) > 0) {
    ++memo->stats_.hits;
    return true;
  }
  ++memo->stats_.misses;
  if (!check())
    return false;
  if (memo->good_.size() >= memo->max_entries_) {
    memo->good_.clear();
    ++memo->stats_.clears;
  }
  memo->good_.insert(d);
  return true;
}

verify_memo::stats verify_memo::figures() const {
  auto s = stats_;
  s.entries = good_.size();
  return s;
}

void use_verify_memo(verify_memo* memo) { memo_in_use = memo; }

std::string to_text(const public_key& pk) {
  std::string raw(pk.view());
  for (auto b : id_checksum(pk))
    raw.push_back(static_cast<char>(b));
  std::string out = "k";
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char ch : raw) {
    acc = (acc << 8) | ch;
    bits += 8;
    while (bits >= 5) {
      out.push_back(b32_alphabet[(acc >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0)
    out.push_back(b32_alphabet[(acc << (5 - bits)) & 31]);
  return out;
}

std::optional<public_key> parse_id(std::string_view text, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<public_key> {
    if (why)
      *why = reason;
    return std::nullopt;
  };
  if (text.empty() || text[0] != 'k')
    return fail("an id starts with 'k'");
  if (text.size() != id_text_chars)
    return fail("an id is 57 characters long; this one is truncated or has extra characters");
  std::string raw;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : text.substr(1)) {
    int v = -1;
    if (ch >= 'a' && ch <= 'z')
      v = ch - 'a';
    else if (ch >= 'A' && ch <= 'Z')
      v = ch - 'A';
    else if (ch >= '2' && ch <= '7')
      v = 26 + (ch - '2');
    if (v < 0)
      return fail("an id uses only the letters a-z and the digits 2-7");
    acc = (acc << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      raw.push_back(static_cast<char>((acc >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  if (raw.size() != 32 + id_checksum_bytes)
    return fail("an id encodes 35 bytes");
  public_key pk;
  std::copy(raw.begin(), raw.begin() + 32, pk.bytes.begin());
  auto sum = id_checksum(pk);
  for (std::size_t i = 0; i < id_checksum_bytes; ++i)
    if (static_cast<std::uint8_t>(raw[32 + i]) != sum[i])
      return fail("the id's checksum does not match: a character is mistyped");
  return pk;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

} // namespace kith::protocol
