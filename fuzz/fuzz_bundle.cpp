// fuzz_bundle: a bundle file (protocol::read_bundle), as `kith import` or
// POST /v1/bundle receives it, then storage::import_bundle into the
// receiver's store of fuzz/common.hpp's world. read_bundle must refuse
// with a reason or return a bundle; an import that succeeds must leave the
// topic passing store::check_topic.

#include "kith/protocol/bundle.hpp"
#include "kith/storage/bundle.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace kith;

namespace {

const fuzz::world& the_world() {
  static const fuzz::world w;
  return w;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto& w = the_world();
  std::string why;
  auto b = protocol::read_bundle(in, {}, &why);
  if (!b) {
    if (why.empty())
      fuzz::invariant_failed("read_bundle refused without a reason");
    return 0;
  }
  auto s = w.receiver_store();
  auto st = storage::import_bundle(*s, *b);
  if (!st)
    return 0;
  if (auto c = s->check_topic(b->topic.id); !c)
    fuzz::invariant_failed("check_topic fails after a successful import", c.err().message);
  return 0;
}
