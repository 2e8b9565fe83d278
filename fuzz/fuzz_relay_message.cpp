// fuzz_relay_message: relay::decode_relay_message on arbitrary bytes (what
// a relay reads from any client, and a node from a relay). A message that
// decodes (other than unknown_msg, which is decode-only) must survive a
// round trip: encode(decode(x)) decodes again to the same encoding.

#include "kith/relay/messages.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace kith;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const relay::wire_limits limits;
  std::string why;
  auto m = relay::decode_relay_message(in, limits, &why);
  if (!m) {
    if (why.empty())
      fuzz::invariant_failed("decode_relay_message refused without a reason");
    return 0;
  }
  (void)relay::relay_message_name(*m);
  (void)relay::request_id_of(*m);
  if (std::holds_alternative<relay::unknown_msg>(*m))
    return 0;
  const std::string once = relay::encode_relay_message(*m);
  auto again = relay::decode_relay_message(once, limits, &why);
  if (!again)
    fuzz::invariant_failed("a re-encoded relay message does not decode", why);
  if (again->index() != m->index())
    fuzz::invariant_failed("a re-encoded relay message changed kind");
  if (relay::encode_relay_message(*again) != once)
    fuzz::invariant_failed("encode(decode(encode(m))) differs from encode(m)");
  return 0;
}
