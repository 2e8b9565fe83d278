#include "kith/relay/record.hpp"

namespace kith::relay {

namespace {

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

} // namespace

std::string record_signing_bytes(const signed_record& r) {
  std::size_t n = record_domain.size() + 1 + 32 + 8 + 8 + 4;
  for (const auto& a : r.addresses)
    n += 4 + a.size();
  std::string out;
  out.reserve(n);
  out.append(record_domain);
  out.push_back('\0');
  out.append(r.id.view());
  put_be(out, r.seq, 8);
  put_be(out, r.expiry_ms, 8);
  put_be(out, r.addresses.size(), 4);
  for (const auto& a : r.addresses) {
    put_be(out, a.size(), 4);
    out.append(a);
  }
  return out;
}

signed_record make_record(const protocol::identity& self, std::vector<std::string> addresses,
                          std::uint64_t expiry_ms, std::uint64_t seq) {
  signed_record r;
  r.id = self.pub();
  r.addresses = std::move(addresses);
  r.expiry_ms = expiry_ms;
  r.seq = seq;
  r.sig = self.sign(record_signing_bytes(r));
  return r;
}

bool verify_record(const signed_record& r) {
  return protocol::verify(r.id, record_signing_bytes(r), r.sig);
}

std::string rendezvous_key(std::string_view name) {
  const auto h = protocol::hash_of(rendezvous_domain, std::string_view("\0", 1), name);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

} // namespace kith::relay
