#include "kith/protocol/channel.hpp"

#include <sodium.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

// The construction and the reasons for it are in docs/secure-channel.md.
// In short: X25519 ephemerals (crypto_kx) give the session keys, ed25519
// identities only sign a hash of the ephemerals, and every message after
// msg1 is XChaCha20-Poly1305 under a per-direction counter nonce.

namespace kith::protocol {

namespace {

constexpr std::size_t prefix_bytes = 4;
constexpr std::size_t tag_bytes = crypto_aead_xchacha20poly1305_ietf_ABYTES; // 16
constexpr std::size_t eph_bytes = crypto_kx_PUBLICKEYBYTES;                  // 32
constexpr std::size_t session_key_bytes = crypto_kx_SESSIONKEYBYTES;         // 32
constexpr std::size_t id_bytes = 32;
constexpr std::size_t sig_bytes = 64;

constexpr std::string_view magic = "kith";
constexpr std::uint8_t version = 1;

// Exact sizes of the three handshake messages (without the length prefix).
constexpr std::size_t msg1_bytes = 4 + 1 + eph_bytes;                        // 37
constexpr std::size_t msg2_bytes = eph_bytes + id_bytes + sig_bytes + tag_bytes; // 144
constexpr std::size_t msg3_bytes = id_bytes + sig_bytes + tag_bytes;         // 112
// The resumed handshake's: msg1 names a ticket, msg2 and msg3 carry only
// the tag that proves their sender holds the ticket's secret.
constexpr std::size_t ticket_id_bytes = 16;
constexpr std::size_t ticket_secret_bytes = 32;
constexpr std::size_t msg1r_bytes = msg1_bytes + ticket_id_bytes;              // 53
constexpr std::size_t msg2r_bytes = eph_bytes + tag_bytes;                     // 48
constexpr std::size_t msg3r_bytes = tag_bytes;                                 // 16

constexpr std::string_view responder_label = "kith-hs1/responder";
constexpr std::string_view initiator_label = "kith-hs1/initiator";
constexpr std::string_view resume_ir_label = "kith-hs1/resume/ir";
constexpr std::string_view resume_ri_label = "kith-hs1/resume/ri";
constexpr std::string_view ticket_label = "kith-hs1/ticket";

// The largest body a 4-byte length prefix can announce.
constexpr std::uint64_t wire_max = std::numeric_limits<std::uint32_t>::max();

std::string_view as_view(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

const unsigned char* as_uchar(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

void put_prefix(std::string& out, std::size_t n) {
  assert(n <= wire_max);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
}

std::string framed(std::string_view body) {
  std::string out;
  out.reserve(prefix_bytes + body.size());
  put_prefix(out, body.size());
  out.append(body);
  return out;
}

// Nonce for message number `counter` of one direction: the counter little-
// endian in the first 8 bytes, the rest zero. Each direction has its own
// key, so (key, nonce) pairs never repeat within a session, and keys never
// repeat across sessions because the ephemerals are fresh.
std::array<unsigned char, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>
nonce_for(std::uint64_t counter) {
  std::array<unsigned char, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> n{};
  for (int i = 0; i < 8; ++i)
    n[static_cast<std::size_t>(i)] = static_cast<unsigned char>(counter >> (8 * i));
  return n;
}

/// key = BLAKE2b-256(keyed with secret, label | key): a session key made
/// to depend on a resumption secret as well as on the key exchange.
void mix_secret(std::array<std::uint8_t, session_key_bytes>& key,
                const std::array<std::uint8_t, ticket_secret_bytes>& secret,
                std::string_view label) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret.data(), secret.size(), key.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                            label.size());
  crypto_generichash_update(&st, key.data(), key.size());
  crypto_generichash_final(&st, key.data(), key.size());
}

std::string concat(std::string_view a, std::string_view b) {
  std::string s;
  s.reserve(a.size() + b.size());
  s.append(a);
  s.append(b);
  return s;
}

} // namespace

struct channel::impl {
  // Where the handshake is. The initiator goes await_msg2 -> open; the
  // responder await_msg1 -> await_msg3 -> open. Any failure -> closed.
  enum class step : std::uint8_t { await_msg1, await_msg2, await_msg3, open, closed };

  impl(const identity& self, role r, const key_seed& ephemeral_seed, std::uint64_t now_ms,
       std::optional<public_key> expected, channel_limits lim)
      : role_(r),
        // A frame's body (ciphertext and tag) must fit a 4-byte length
        // prefix; a configured limit beyond that is clamped rather than
        // overflowed. The other limits are clamped to 32 bits as well
        // (a receive buffer of 4 GiB, a handshake of 49 days).
        max_plain_(static_cast<std::uint32_t>(std::min<std::uint64_t>(lim.max_frame_bytes, wire_max - tag_bytes))),
        handshake_timeout_ms_(static_cast<std::uint32_t>(std::min<std::uint64_t>(lim.handshake_timeout_ms, wire_max))),
        max_buffered_bytes_(static_cast<std::uint32_t>(std::min<std::uint64_t>(lim.max_buffered_bytes, wire_max))),
        hs_(std::make_unique<handshake>(self, now_ms, std::move(expected))) {
    ensure_sodium();
    crypto_kx_seed_keypair(hs_->eph_pk.data(), hs_->eph_sk.data(), ephemeral_seed.data());
    step_ = r == role::initiator ? step::await_msg2 : step::await_msg1;
    check_invariant();
  }

  ~impl() { wipe_keys(); }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  // The fields are ordered so that nothing pads between them, and sized
  // to what they hold (a frame's length fits 32 bits): an open channel is
  // 224 bytes, jemalloc's 224-byte class (one per connection end; the
  // simulator holds tens per node). Checked below the struct.
  role role_;
  step step_ = step::closed;
  bool started_ = false;
  bool have_keys_ = false;
  bool resumed_ = false;
  bool has_chain_start_ = false; // chain_started_ms_ is set
  bool has_peer_ = false;        // peer_ is set (the handshake authenticated it)
  // Incremental framing: the length prefix as it arrives, then the body.
  std::array<std::uint8_t, prefix_bytes> prefix_{};
  std::uint32_t prefix_fill_ = 0;
  std::uint32_t body_expected_ = 0;
  // The limits (channel_limits), clamped to 32 bits.
  std::uint32_t max_plain_;
  std::uint32_t handshake_timeout_ms_;
  std::uint32_t max_buffered_bytes_;
  std::unique_ptr<std::string> close_reason_; // made (never empty) once closed
  public_key peer_;

  std::array<std::uint8_t, session_key_bytes> rx_key_{};
  std::array<std::uint8_t, session_key_bytes> tx_key_{};
  std::uint64_t rx_counter_ = 0;
  std::uint64_t tx_counter_ = 0;

  std::string body_;

  std::uint64_t bytes_out_ = 0;
  std::uint64_t bytes_in_ = 0;

  // Resumption: once open, the ticket for the next channel (the rest is
  // in the handshake state). The start of the chain resumed with is kept
  // as a number and a flag (an optional would pad to 16 bytes).
  std::uint64_t chain_started_ms_ = 0;
  void set_chain_start(std::optional<std::uint64_t> ms) {
    has_chain_start_ = ms.has_value();
    chain_started_ms_ = ms.value_or(0);
  }
  [[nodiscard]] std::optional<std::uint64_t> chain_start() const {
    return has_chain_start_ ? std::optional<std::uint64_t>(chain_started_ms_) : std::nullopt;
  }
  // Held only until the owner takes it (at the peer's hello): out of
  // line, so the open channel does not carry its room for good.
  std::unique_ptr<resume_ticket> next_ticket_;

  /// What only the handshake needs, dropped (its secrets wiped) as soon
  /// as the channel is open or closed: an open channel keeps its session
  /// keys and framing state, not the identity's secret key, the
  /// ephemerals or the ticket machinery (about half of what a channel
  /// held, per connection, for its whole life).
  struct handshake {
    handshake(const identity& s, std::uint64_t now, std::optional<public_key> expected)
        : self(s), started_ms(now), expected_peer(std::move(expected)) {}
    ~handshake() {
      sodium_memzero(eph_sk.data(), eph_sk.size());
      sodium_memzero(resume_secret.data(), resume_secret.size());
      forget_ticket(offered);
    }
    handshake(const handshake&) = delete;
    handshake& operator=(const handshake&) = delete;

    identity self;
    std::uint64_t started_ms;
    std::optional<public_key> expected_peer;
    std::array<std::uint8_t, eph_bytes> eph_pk{};
    std::array<std::uint8_t, crypto_kx_SECRETKEYBYTES> eph_sk{};
    std::array<std::uint8_t, eph_bytes> peer_eph{};
    // The initiator's offered ticket until msg2 answers it; the
    // responder's way to find tickets; during a resumed handshake its
    // secret (wiped once mixed into the keys) and the identity it vouches
    // for.
    std::optional<resume_ticket> offered;
    channel::ticket_lookup lookup;
    bool resuming = false;
    std::array<std::uint8_t, ticket_secret_bytes> resume_secret{};
    public_key resume_peer;
  };
  std::unique_ptr<handshake> hs_; // null once open or closed

  // ---- invariants ------------------------------------------------------

  void check_invariant() const {
#ifndef NDEBUG
    assert((step_ == step::closed) == (close_reason_ && !close_reason_->empty()));
    assert(prefix_fill_ <= prefix_bytes);
    assert(body_.size() <= body_expected_ || prefix_fill_ < prefix_bytes);
    if (step_ == step::open) {
      assert(have_keys_);
      assert(has_peer_);
    }
    if (step_ == step::await_msg3)
      assert(have_keys_);
    assert((step_ == step::open || step_ == step::closed) == !hs_);
    if (step_ == step::closed)
      assert(!next_ticket_);
#endif
  }

  void wipe_keys() {
    hs_.reset();
    sodium_memzero(rx_key_.data(), rx_key_.size());
    sodium_memzero(tx_key_.data(), tx_key_.size());
    forget_ticket(next_ticket_);
  }

  template <class Holder> // std::optional or std::unique_ptr
  static void forget_ticket(Holder& t) {
    if (t)
      sodium_memzero(t->secret.data(), t->secret.size());
    t.reset();
  }

  void fail(channel_output& out, std::string reason) {
    step_ = step::closed;
    close_reason_ = std::make_unique<std::string>(std::move(reason));
    out.error = *close_reason_;
    // Nothing further is read, so nothing further is kept.
    std::string().swap(body_);
    prefix_fill_ = 0;
    body_expected_ = 0;
    have_keys_ = false;
    wipe_keys();
  }

  // ---- keys and AEAD -----------------------------------------------------

  /// Derives rx/tx from the two ephemerals; false if the peer's key is a
  /// low-order point (the shared secret would be all zeros).
  bool derive_keys() {
    int rc = role_ == role::initiator
                 ? crypto_kx_client_session_keys(rx_key_.data(), tx_key_.data(), hs_->eph_pk.data(),
                                                 hs_->eph_sk.data(), hs_->peer_eph.data())
                 : crypto_kx_server_session_keys(rx_key_.data(), tx_key_.data(), hs_->eph_pk.data(),
                                                 hs_->eph_sk.data(), hs_->peer_eph.data());
    // The ephemeral secret has done its job; dropping it now is what makes
    // a later compromise of this process unable to recompute the keys.
    sodium_memzero(hs_->eph_sk.data(), hs_->eph_sk.size());
    have_keys_ = rc == 0;
    return have_keys_;
  }

  /// Ciphertext and tag of plain under the next tx nonce (no prefix).
  std::string seal_body(std::string_view plain) {
    assert(have_keys_ && tx_counter_ != std::numeric_limits<std::uint64_t>::max());
    std::string c(plain.size() + tag_bytes, '\0');
    auto nonce = nonce_for(tx_counter_++);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(c.data()), &clen,
                                               as_uchar(plain), plain.size(), nullptr, 0,
                                               nullptr, nonce.data(), tx_key_.data());
    assert(clen == c.size());
    return c;
  }

  /// Plaintext of body under the next rx nonce, or nullopt if the tag does
  /// not match (the counter is spent either way: the channel closes).
  std::optional<std::string> open_body(std::string_view body) {
    if (!have_keys_ || body.size() < tag_bytes ||
        rx_counter_ == std::numeric_limits<std::uint64_t>::max())
      return std::nullopt;
    std::string m(body.size() - tag_bytes, '\0');
    auto nonce = nonce_for(rx_counter_++);
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(m.data()),
                                                   &mlen, nullptr, as_uchar(body), body.size(),
                                                   nullptr, 0, nonce.data(), rx_key_.data()) != 0)
      return std::nullopt;
    assert(mlen == m.size());
    return m;
  }

  /// A resumed handshake: both session keys also depend on the ticket's
  /// secret, so only the two ends that hold it can open msg2 and msg3.
  void mix_resume_secret() {
    auto& k_ir = role_ == role::initiator ? tx_key_ : rx_key_;
    auto& k_ri = role_ == role::initiator ? rx_key_ : tx_key_;
    mix_secret(k_ir, hs_->resume_secret, resume_ir_label);
    mix_secret(k_ri, hs_->resume_secret, resume_ri_label);
    sodium_memzero(hs_->resume_secret.data(), hs_->resume_secret.size());
  }

  /// The next ticket, from this session's keys (both ends get the same).
  void issue_ticket() {
    const auto& k_ir = role_ == role::initiator ? tx_key_ : rx_key_;
    const auto& k_ri = role_ == role::initiator ? rx_key_ : tx_key_;
    std::array<std::uint8_t, ticket_id_bytes + ticket_secret_bytes> t{};
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, t.size());
    crypto_generichash_update(&st, as_uchar(ticket_label), ticket_label.size());
    crypto_generichash_update(&st, k_ir.data(), k_ir.size());
    crypto_generichash_update(&st, k_ri.data(), k_ri.size());
    crypto_generichash_final(&st, t.data(), t.size());
    resume_ticket r;
    std::memcpy(r.id.data(), t.data(), ticket_id_bytes);
    std::memcpy(r.secret.data(), t.data() + ticket_id_bytes, ticket_secret_bytes);
    r.peer = peer_;
    r.chain_started_ms = resumed_ ? chain_start() : std::nullopt;
    next_ticket_ = std::make_unique<resume_ticket>(r);
    sodium_memzero(t.data(), t.size());
    sodium_memzero(r.secret.data(), r.secret.size());
  }

  void open_as(const public_key& who, channel_output& out) {
    peer_ = who;
    has_peer_ = true;
    step_ = step::open;
    out.established = true;
    issue_ticket();
    hs_.reset(); // `who` may live in it: last
  }

  // ---- transcript --------------------------------------------------------

  std::string_view eph_initiator() const {
    return role_ == role::initiator ? as_view(hs_->eph_pk.data(), eph_bytes)
                                    : as_view(hs_->peer_eph.data(), eph_bytes);
  }
  std::string_view eph_responder() const {
    return role_ == role::responder ? as_view(hs_->eph_pk.data(), eph_bytes)
                                    : as_view(hs_->peer_eph.data(), eph_bytes);
  }

  hash256 responder_transcript() const {
    return hash_of(responder_label, eph_initiator(), eph_responder());
  }
  hash256 initiator_transcript(const public_key& responder_id) const {
    return hash_of(initiator_label, concat(eph_initiator(), eph_responder()), responder_id.view());
  }

  /// The sealed {identity, signature} part of msg2 and msg3.
  std::string proof(const hash256& transcript) {
    signature sig = hs_->self.sign(as_view(transcript.data(), transcript.size()));
    return seal_body(concat(hs_->self.pub().view(), sig.view()));
  }

  // ---- framing -----------------------------------------------------------

  /// The exact body sizes the current step accepts (full, resumed), or
  /// {0, 0} for a data frame.
  std::pair<std::size_t, std::size_t> handshake_sizes() const {
    switch (step_) {
    case step::await_msg1: return {msg1_bytes, msg1r_bytes};
    case step::await_msg2: return {msg2_bytes, hs_->offered ? msg2r_bytes : msg2_bytes};
    case step::await_msg3:
      return hs_->resuming ? std::pair{msg3r_bytes, msg3r_bytes} : std::pair{msg3_bytes, msg3_bytes};
    default: return {0, 0};
    }
  }

  static const char* step_name(step s) {
    switch (s) {
    case step::await_msg1: return "handshake message 1";
    case step::await_msg2: return "handshake message 2";
    case step::await_msg3: return "handshake message 3";
    default: return "frame";
    }
  }

  /// Checks an announced body length before a single body byte is kept.
  bool accept_length(std::uint64_t len, channel_output& out) {
    if (auto [full, resumed] = handshake_sizes(); full != 0) {
      if (len != full && len != resumed) {
        std::string want = std::to_string(full);
        if (resumed != full)
          want += " or " + std::to_string(resumed);
        fail(out, std::string(step_name(step_)) + " of " + std::to_string(len) +
                      " bytes where " + want +
                      " were expected (not a kith peer, or a corrupted stream)");
        return false;
      }
      return true;
    }
    std::uint64_t limit = max_plain_ + tag_bytes;
    if (len > limit) {
      fail(out, "frame of " + std::to_string(len) + " bytes exceeds the " + std::to_string(limit) +
                    "-byte limit");
      return false;
    }
    if (len + prefix_bytes > max_buffered_bytes_) {
      fail(out, "frame of " + std::to_string(len) + " bytes exceeds the receive buffer of " +
                    std::to_string(max_buffered_bytes_) + " bytes");
      return false;
    }
    if (len < tag_bytes) {
      fail(out, "frame of " + std::to_string(len) + " bytes is shorter than its " +
                    std::to_string(tag_bytes) + "-byte authentication tag");
      return false;
    }
    return true;
  }

  // ---- the steps ---------------------------------------------------------

  void on_msg1(std::string_view m, channel_output& out) {
    if (m.substr(0, magic.size()) != magic) {
      fail(out, "handshake message 1 does not start with \"kith\" (not a kith peer)");
      return;
    }
    auto v = static_cast<std::uint8_t>(m[magic.size()]);
    if (v != version) {
      fail(out, "peer speaks secure-channel version " + std::to_string(v) +
                    "; this node speaks version " + std::to_string(version));
      return;
    }
    std::memcpy(hs_->peer_eph.data(), m.data() + magic.size() + 1, eph_bytes);
    if (m.size() == msg1r_bytes && hs_->lookup) {
      // A ticket we no longer hold (used, expired, forgotten in a
      // restart) is no error: the full handshake follows.
      resume_ticket::ticket_id id;
      std::memcpy(id.data(), m.data() + msg1_bytes, ticket_id_bytes);
      if (auto t = hs_->lookup(id)) {
        hs_->resuming = true;
        hs_->resume_secret = t->secret;
        hs_->resume_peer = t->peer;
        set_chain_start(t->chain_started_ms);
        sodium_memzero(t->secret.data(), t->secret.size());
      }
    }
    if (!derive_keys()) {
      fail(out, "initiator's ephemeral key is a low-order point");
      return;
    }
    std::string body(eph_responder());
    if (hs_->resuming) {
      mix_resume_secret();
      body += seal_body({});
    } else {
      body += proof(responder_transcript());
    }
    std::string wire = framed(body);
    bytes_out_ += wire.size();
    out.to_send += wire;
    step_ = step::await_msg3;
  }

  void on_msg2(std::string_view m, channel_output& out) {
    std::memcpy(hs_->peer_eph.data(), m.data(), eph_bytes);
    if (!derive_keys()) {
      fail(out, "responder's ephemeral key is a low-order point");
      return;
    }
    if (m.size() == msg2r_bytes) {
      // accept_length let this size through only because we offered.
      assert(hs_->offered);
      hs_->resume_secret = hs_->offered->secret;
      public_key who = hs_->offered->peer;
      set_chain_start(hs_->offered->chain_started_ms);
      forget_ticket(hs_->offered);
      mix_resume_secret();
      if (!open_body(m.substr(eph_bytes))) {
        fail(out, "resumed handshake message 2 failed authentication (the responder does not "
                  "hold the ticket, or the message was altered)");
        return;
      }
      std::string wire = framed(seal_body({}));
      bytes_out_ += wire.size();
      out.to_send += wire;
      resumed_ = true;
      open_as(who, out);
      return;
    }
    forget_ticket(hs_->offered); // the responder chose a full handshake
    auto plain = open_body(m.substr(eph_bytes));
    if (!plain) {
      fail(out, "handshake message 2 failed authentication (altered, or a man in the middle "
                "replaced an ephemeral key)");
      return;
    }
    public_key rid;
    signature sig;
    std::memcpy(rid.bytes.data(), plain->data(), id_bytes);
    std::memcpy(sig.bytes.data(), plain->data() + id_bytes, sig_bytes);
    hash256 t = responder_transcript();
    if (!verify_once(rid, as_view(t.data(), t.size()), sig)) {
      fail(out, "bad signature from responder " + to_text(rid));
      return;
    }
    if (hs_->expected_peer && rid != *hs_->expected_peer) {
      fail(out, "responder is " + to_text(rid) + ", expected " + to_text(*hs_->expected_peer));
      return;
    }
    std::string wire = framed(proof(initiator_transcript(rid)));
    bytes_out_ += wire.size();
    out.to_send += wire;
    open_as(rid, out);
  }

  void on_msg3(std::string_view m, channel_output& out) {
    if (hs_->resuming) {
      if (!open_body(m)) {
        fail(out, "resumed handshake message 3 failed authentication (the initiator does not "
                  "hold the ticket, or the message was altered)");
        return;
      }
      resumed_ = true;
      open_as(hs_->resume_peer, out);
      return;
    }
    auto plain = open_body(m);
    if (!plain) {
      fail(out, "handshake message 3 failed authentication (altered, or a man in the middle)");
      return;
    }
    public_key iid;
    signature sig;
    std::memcpy(iid.bytes.data(), plain->data(), id_bytes);
    std::memcpy(sig.bytes.data(), plain->data() + id_bytes, sig_bytes);
    hash256 t = initiator_transcript(hs_->self.pub());
    if (!verify_once(iid, as_view(t.data(), t.size()), sig)) {
      fail(out, "bad signature from initiator " + to_text(iid));
      return;
    }
    open_as(iid, out);
  }

  void on_frame(std::string_view m, channel_output& out) {
    auto plain = open_body(m);
    if (!plain) {
      fail(out, "frame failed authentication (replayed, reordered or altered)");
      return;
    }
    out.frames.push_back(std::move(*plain));
  }

  void on_message(std::string_view m, channel_output& out) {
    switch (step_) {
    case step::await_msg1: on_msg1(m, out); break;
    case step::await_msg2: on_msg2(m, out); break;
    case step::await_msg3: on_msg3(m, out); break;
    case step::open: on_frame(m, out); break;
    case step::closed: break;
    }
  }

  channel_output receive(std::string_view bytes) {
    check_invariant();
    channel_output out;
    std::size_t i = 0;
    while (i < bytes.size() && step_ != step::closed) {
      if (prefix_fill_ < prefix_bytes) {
        std::size_t n = std::min(prefix_bytes - prefix_fill_, bytes.size() - i);
        std::memcpy(prefix_.data() + prefix_fill_, bytes.data() + i, n);
        prefix_fill_ += n;
        i += n;
        bytes_in_ += n;
        if (prefix_fill_ < prefix_bytes)
          break;
        std::uint64_t len = 0;
        for (auto b : prefix_)
          len = (len << 8) | b;
        if (!accept_length(len, out))
          break;
        body_expected_ = static_cast<std::uint32_t>(len); // accept_length: at most wire_max
        body_.clear();
      }
      std::size_t want = body_expected_ - body_.size();
      std::size_t n = std::min(want, bytes.size() - i);
      if (body_.empty() && n == body_expected_) {
        // The whole body is in this chunk: no copy into the buffer.
        std::string_view whole = bytes.substr(i, n);
        i += n;
        bytes_in_ += n;
        prefix_fill_ = 0;
        on_message(whole, out);
        continue;
      }
      body_.append(bytes.data() + i, n);
      i += n;
      bytes_in_ += n;
      if (body_.size() == body_expected_) {
        prefix_fill_ = 0;
        std::string whole;
        whole.swap(body_);
        on_message(whole, out);
      }
    }
    check_invariant();
    return out;
  }

  std::optional<std::string> seal(std::string_view plain) {
    check_invariant();
    if (step_ == step::closed)
      return std::nullopt;
    channel_output ignored;
    if (step_ != step::open) {
      fail(ignored, "seal called before the handshake completed");
      return std::nullopt;
    }
    if (plain.size() > max_plain_) {
      fail(ignored, "frame of " + std::to_string(plain.size()) + " bytes exceeds the " +
                        std::to_string(max_plain_) + "-byte limit");
      return std::nullopt;
    }
    if (tx_counter_ == std::numeric_limits<std::uint64_t>::max()) {
      fail(ignored, "message counter exhausted; open a new channel");
      return std::nullopt;
    }
    std::string wire = framed(seal_body(plain));
    bytes_out_ += wire.size();
    check_invariant();
    return wire;
  }

  channel_output tick(std::uint64_t now_ms) {
    check_invariant();
    channel_output out;
    bool handshaking = step_ != step::open && step_ != step::closed;
    if (handshaking && now_ms >= hs_->started_ms &&
        now_ms - hs_->started_ms >= handshake_timeout_ms_)
      fail(out, "handshake timeout: not established within " +
                    std::to_string(handshake_timeout_ms_) + " ms");
    check_invariant();
    return out;
  }

  std::string start() {
    if (role_ != role::initiator || started_ || !hs_)
      return {};
    started_ = true;
    std::string body(magic);
    body.push_back(static_cast<char>(version));
    body.append(as_view(hs_->eph_pk.data(), eph_bytes));
    if (hs_->offered)
      body.append(as_view(hs_->offered->id.data(), ticket_id_bytes));
    std::string wire = framed(body);
    bytes_out_ += wire.size();
    return wire;
  }

  channel_state state() const {
    switch (step_) {
    case step::open: return channel_state::established;
    case step::closed: return channel_state::closed;
    default: return channel_state::handshaking;
    }
  }
};

channel::channel(const identity& self, role r, const key_seed& ephemeral_seed,
                 std::uint64_t now_ms, std::optional<public_key> expected_peer,
                 channel_limits limits)
    : impl_(std::make_unique<impl>(self, r, ephemeral_seed, now_ms, std::move(expected_peer),
                                   limits)) {
  // Where the layout is the one measured (libstdc++, 64-bit), a channel
  // stays within jemalloc's 224-byte class (the next is 256).
#if defined(__GLIBCXX__) && !defined(_GLIBCXX_DEBUG) && UINTPTR_MAX == UINT64_MAX
  static_assert(sizeof(impl) <= 224, "the channel outgrew the 224-byte allocation class");
#endif
}

resume_ticket::~resume_ticket() { sodium_memzero(secret.data(), secret.size()); }

channel::~channel() = default;

void channel::offer_ticket(const resume_ticket& t) {
  auto& i = *impl_;
  if (i.role_ == role::initiator && !i.started_ && i.step_ == impl::step::await_msg2 &&
      (!i.hs_->expected_peer || t.peer == *i.hs_->expected_peer))
    i.hs_->offered = t;
}

void channel::accept_tickets(ticket_lookup lookup) {
  if (impl_->role_ == role::responder && impl_->hs_)
    impl_->hs_->lookup = std::move(lookup);
}

std::optional<resume_ticket> channel::take_ticket() {
  auto& i = *impl_;
  if (i.step_ != impl::step::open)
    return std::nullopt;
  if (!i.next_ticket_)
    return std::nullopt;
  std::optional<resume_ticket> t = *i.next_ticket_;
  impl::forget_ticket(i.next_ticket_);
  return t;
}

bool channel::resumed() const { return impl_->resumed_; }
channel::channel(channel&&) noexcept = default;
channel& channel::operator=(channel&&) noexcept = default;

std::string channel::start() { return impl_->start(); }
channel_output channel::receive(std::string_view bytes) { return impl_->receive(bytes); }
std::optional<std::string> channel::seal(std::string_view plaintext) {
  return impl_->seal(plaintext);
}
channel_output channel::tick(std::uint64_t now_ms) { return impl_->tick(now_ms); }
channel_state channel::state() const { return impl_->state(); }
std::optional<public_key> channel::peer() const {
  return impl_->has_peer_ ? std::optional<public_key>(impl_->peer_) : std::nullopt;
}
const std::string& channel::close_reason() const {
  static const std::string open;
  return impl_->close_reason_ ? *impl_->close_reason_ : open;
}
std::uint64_t channel::bytes_out() const { return impl_->bytes_out_; }
std::uint64_t channel::bytes_in() const { return impl_->bytes_in_; }

} // namespace kith::protocol
