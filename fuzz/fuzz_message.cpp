// fuzz_message: protocol::decode_message on arbitrary bytes (what a peer
// sends inside an established channel). A message that decodes must
// survive a round trip: encode(decode(x)) decodes again, and encoding that
// gives the same bytes. Data messages are also split into parts the way
// a sender does; every part must encode to a message the decoder accepts.

#include "kith/protocol/messages.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace kith;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const protocol::message_limits limits;
  std::string why;
  auto m = protocol::decode_message(in, limits, &why);
  if (!m) {
    if (why.empty())
      fuzz::invariant_failed("decode_message refused without a reason");
    return 0;
  }
  (void)protocol::message_name(*m);

  const std::string once = protocol::encode_message(*m);
  auto again = protocol::decode_message(once, limits, &why);
  if (!again)
    fuzz::invariant_failed("a re-encoded message does not decode", why);
  if (again->index() != m->index())
    fuzz::invariant_failed("a re-encoded message changed kind");
  const std::string twice = protocol::encode_message(*again);
  if (once != twice)
    fuzz::invariant_failed("encode(decode(encode(m))) differs from encode(m)",
                           std::to_string(once.size()) + " vs " + std::to_string(twice.size()) +
                               " bytes");

  if (const auto* d = std::get_if<protocol::data_msg>(&*m)) {
    // Parts small enough to force splitting of anything but tiny replies.
    for (const std::size_t max_bytes : {std::size_t{512}, std::size_t{64} << 10}) {
      for (auto& part : protocol::split_reply(d->reply, max_bytes)) {
        protocol::data_msg pm;
        pm.kind = d->kind;
        pm.last = d->last;
        pm.reply = std::move(part);
        const std::string bytes = protocol::encode_message(pm);
        if (!protocol::decode_message(bytes, limits, &why))
          fuzz::invariant_failed("a part made by split_reply does not decode", why);
      }
    }
  }
  if (const auto* q = std::get_if<protocol::query_result_msg>(&*m)) {
    // An aggregator's answer: each item is checked on its own; whatever the
    // bytes, verification answers yes or no with a reason, never crashes.
    for (const auto& item : q->items) {
      std::string reason;
      if (!protocol::verify_standalone(item.reply, item.author, &reason) && reason.empty())
        fuzz::invariant_failed("verify_standalone refused an item without a reason");
    }
  }
  return 0;
}
