// Bundle layout (docs/protocol.md, "Bundles"):
//
//   "KITHBNDL" | u32 version (big-endian) | records | signature (64 bytes)
//   record = u32 length (big-endian) | one encoded wire message
//
// Records, in order: hello (the exporter's replica binding), offer (exactly
// the one topic's descriptor), data messages of kind resync (the pages),
// resync_done (complete). The signature is the exporter's, over
// BLAKE2b("kith/bundle/v1", everything before it).

#include "kith/protocol/bundle.hpp"

#include <variant>

namespace kith::protocol {

namespace {

constexpr std::string_view magic = "KITHBNDL";
constexpr std::uint32_t bundle_version = 1;
constexpr std::string_view sig_domain = "kith/bundle/v1";

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t get_u32(std::string_view b) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
  return v;
}

void put_record(std::string& out, const message& m) {
  auto bytes = encode_message(m);
  put_u32(out, static_cast<std::uint32_t>(bytes.size()));
  out += bytes;
}

std::optional<bundle> fail(std::string* why, std::string reason) {
  if (why)
    *why = std::move(reason);
  return std::nullopt;
}

} // namespace

bundle_writer::bundle_writer(const identity& self, const replica_binding& binding,
                             const topic_descriptor& topic)
    : self_(self) {
  out_.append(magic);
  put_u32(out_, bundle_version);
  put_record(out_, hello_msg{protocol_version, binding, "kith bundle"});
  put_record(out_, offer_msg{{topic}});
}

void bundle_writer::add(const signed_reply& page) {
  put_record(out_, data_msg{data_kind::resync, true, page});
}

std::string bundle_writer::finish() {
  put_record(out_, resync_done_msg{{}, {}, true});
  auto h = hash_of(sig_domain, out_);
  auto sig = self_.sign(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
  out_.append(sig.view());
  return std::move(out_);
}

std::optional<bundle> read_bundle(std::string_view bytes, const bundle_limits& l,
                                  std::string* why) {
  constexpr std::size_t sig_size = 64;
  if (bytes.size() > l.max_bundle_bytes)
    return fail(why, "bundle of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                         std::to_string(l.max_bundle_bytes));
  if (bytes.size() < magic.size() + 4 + sig_size || bytes.substr(0, magic.size()) != magic)
    return fail(why, "not a kith bundle (bad magic or too short)");
  if (auto v = get_u32(bytes.substr(magic.size(), 4)); v != bundle_version)
    return fail(why, "bundle version " + std::to_string(v) + " is not supported (expected " +
                         std::to_string(bundle_version) + ")");
  const auto signed_part = bytes.substr(0, bytes.size() - sig_size);
  auto rest = signed_part.substr(magic.size() + 4);

  bundle b;
  enum class stage { hello, offer, pages, done } at = stage::hello;
  std::size_t index = 0;
  while (!rest.empty()) {
    if (rest.size() < 4)
      return fail(why, "record " + std::to_string(index) + " is truncated");
    const std::size_t len = get_u32(rest);
    if (len > rest.size() - 4)
      return fail(why, "record " + std::to_string(index) + " claims " + std::to_string(len) +
                           " bytes, only " + std::to_string(rest.size() - 4) + " remain");
    std::string reason;
    auto m = decode_message(rest.substr(4, len), l.messages, &reason);
    if (!m)
      return fail(why, "record " + std::to_string(index) + ": " + reason);
    rest.remove_prefix(4 + len);
    const auto here = "record " + std::to_string(index) + " (" + message_name(*m) + "): ";
    ++index;
    switch (at) {
      case stage::hello: {
        auto* h = std::get_if<hello_msg>(&*m);
        if (!h)
          return fail(why, here + "a bundle starts with the exporter's hello");
        if (!check_binding(h->binding))
          return fail(why, here + "the exporter's replica binding does not check out");
        b.exporter = h->binding;
        at = stage::offer;
        break;
      }
      case stage::offer: {
        auto* o = std::get_if<offer_msg>(&*m);
        if (!o || o->topics.size() != 1)
          return fail(why, here + "the second record must offer exactly one topic");
        std::string bad;
        if (!check_topic(o->topics.front(), &bad))
          return fail(why, here + "topic descriptor: " + bad);
        b.topic = o->topics.front();
        at = stage::pages;
        break;
      }
      case stage::pages: {
        if (auto* d = std::get_if<data_msg>(&*m)) {
          if (d->kind != data_kind::resync)
            return fail(why, here + "bundle pages must be resync data");
          if (d->reply.topic != b.topic.id)
            return fail(why, here + "page of topic " + d->reply.topic + " in a bundle of " +
                                 b.topic.id);
          if (d->reply.from != b.exporter.rid)
            return fail(why, here + "page not from the exporter's replica");
          if (b.pages.size() >= l.max_pages)
            return fail(why, here + "more than " + std::to_string(l.max_pages) + " pages");
          b.pages.push_back(std::move(d->reply));
        } else if (auto* e = std::get_if<resync_done_msg>(&*m); e && e->complete) {
          at = stage::done;
        } else {
          return fail(why, here + "unexpected record among the pages");
        }
        break;
      }
      case stage::done:
        return fail(why, here + "records after the end of the bundle");
    }
  }
  if (at != stage::done)
    return fail(why, "bundle is incomplete (no end record): truncated?");
  signature sig;
  const auto sig_bytes = bytes.substr(bytes.size() - sig_size);
  std::copy(sig_bytes.begin(), sig_bytes.end(), reinterpret_cast<char*>(sig.bytes.data()));
  auto h = hash_of(sig_domain, signed_part);
  if (!verify(b.exporter.author,
              std::string_view(reinterpret_cast<const char*>(h.data()), h.size()), sig))
    return fail(why, "the bundle's signature does not match its exporter " +
                         to_text(b.exporter.author) + ": altered or truncated");
  return b;
}

} // namespace kith::protocol
