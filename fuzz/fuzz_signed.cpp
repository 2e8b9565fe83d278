// fuzz_signed: signed data from a peer, from bytes to the store. The input
// is one mode byte and a wire message (protocol::decode_message); what
// decodes is verified and applied the way a node does it:
//   hello -> check_binding; offer -> check_topic + store::add_topic;
//   data  -> store::apply on the receiver's store (fuzz/common.hpp's world).
// Mode (first byte, low bit):
//   0  as received: signatures must hold, so only seeds with genuine
//      signatures get past verification, and mutations test that nothing
//      unsigned is trusted;
//   1  re-signed: batches, bindings and topic descriptors of the known
//      writers (w1..w3, never the receiver) are signed again after
//      decoding. A writer may sign anything, so this explores what an
//      authorised but hostile peer can make the store do.
// Invariants after a successful apply: store::check_topic passes, a second
// apply of the same reply succeeds and adds no new dots, and the
// incremental indexes equal a rebuild.

#include "kith/protocol/messages.hpp"
#include "kith/storage/store.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

using namespace kith;

namespace {

const fuzz::world& the_world() {
  static const fuzz::world w;
  return w;
}

void resign(const fuzz::world& w, protocol::replica_binding& b) {
  if (auto known = w.writer_of(b.rid))
    b = known->second;
}

void resign(const fuzz::world& w, protocol::topic_descriptor& t) {
  if (const auto* id = w.writer_of(t.creator); id && t.kind != protocol::topic_kind::feed)
    t = protocol::make_topic(*id, t.kind, t.name, t.writers, t.nonce);
}

/// KITH_FUZZ_NO_EQUIVOCATION=1: do not re-sign a batch over dots the
/// receiver already holds or that another batch of the reply covers. An
/// author signing two different writes for one dot is accepted by
/// store::apply today (fuzz/corpus/fuzz_signed/crash-equivocating-batch,
/// docs/fuzzing.md); this switch lets a run look past that known bug.
bool avoid_equivocation() {
  static const bool on = std::getenv("KITH_FUZZ_NO_EQUIVOCATION") != nullptr;
  return on;
}

bool overlaps_held(const fuzz::world& w, const protocol::signed_reply& r,
                   const protocol::signed_batch& sb) {
  static const auto clocks = [&] {
    std::map<std::string, causality::node_clock> out;
    auto s = w.receiver_store();
    for (const auto& t : s->topics())
      if (auto c = s->clock_copy(t))
        out.emplace(t, std::move(*c));
    return out;
  }();
  const auto last = sb.first + sb.leaves.size() - 1;
  if (auto c = clocks.find(sb.topic); c != clocks.end())
    for (std::uint64_t n = sb.first; n <= last && n >= sb.first; ++n)
      if (c->second.contains({sb.rid, causality::counter{n}}))
        return true;
  for (const auto& other : r.batches)
    if (&other != &sb && other.rid == sb.rid && !other.leaves.empty() &&
        other.first <= last && sb.first <= other.first + other.leaves.size() - 1)
      return true;
  return false;
}

void resign(const fuzz::world& w, protocol::signed_reply& r) {
  for (auto& b : r.bindings)
    resign(w, b);
  for (auto& sb : r.batches) {
    auto known = w.writer_of(sb.rid);
    if (!known || sb.leaves.empty() || sb.leaves.size() > 4096)
      continue;
    if (avoid_equivocation() && overlaps_held(w, r, sb))
      continue;
    sb = protocol::sign_batch(*known->first, sb.topic, sb.rid, sb.first, sb.leaves);
  }
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

std::string vv_text(const causality::version_vector& v) {
  std::string out = "{";
  for (const auto& [id, n] : v.entries())
    out += " " + std::to_string(id.value()) + ":" + std::to_string(n);
  return out + " }";
}

/// With KITH_FUZZ_DEBUG set, what a reply holds (to triage a crash input:
/// `KITH_FUZZ_DEBUG=1 fuzz_signed crash-...`).
void describe(const fuzz::world& w, const protocol::signed_reply& r) {
  if (std::getenv("KITH_FUZZ_DEBUG") == nullptr)
    return;
  std::fprintf(stderr, "reply topic=%s from=%llu\n", printable(r.topic).c_str(),
               static_cast<unsigned long long>(r.from.value()));
  for (const auto& [id, e] : r.clock.entries())
    std::fprintf(stderr, "  clock %llu: base %llu\n", static_cast<unsigned long long>(id.value()),
                 static_cast<unsigned long long>(e.base()));
  for (const auto& e : r.entries) {
    std::fprintf(stderr, "  entry key=%s\n", printable(e.key).c_str());
    for (const auto& [d, bytes] : e.records) {
      auto b = protocol::decode_body(bytes);
      std::fprintf(stderr, "    record %llu.%llu %s\n",
                   static_cast<unsigned long long>(d.id.value()),
                   static_cast<unsigned long long>(d.n.value()),
                   !b ? "(undecodable)"
                      : ((b->deleted ? "deleted" : "value=" + printable(b->value)) +
                         " time=" + std::to_string(b->time_ms) + " ctx=" + vv_text(b->context))
                            .c_str());
    }
    for (const auto& h : e.resolves)
      std::fprintf(stderr, "    resolves %llu.%llu key=%s %s ctx=%s\n",
                   static_cast<unsigned long long>(h.d.id.value()),
                   static_cast<unsigned long long>(h.d.n.value()), printable(h.key).c_str(),
                   h.deleted ? "deleted" : "", vv_text(h.context).c_str());
  }
  for (const auto& b : r.batches)
    std::fprintf(stderr, "  batch %llu first=%llu leaves=%zu%s\n",
                 static_cast<unsigned long long>(b.rid.value()),
                 static_cast<unsigned long long>(b.first), b.leaves.size(),
                 w.writer_of(b.rid) ? " (known writer)" : "");
  for (const auto& b : r.bindings)
    std::fprintf(stderr, "  binding %llu\n", static_cast<unsigned long long>(b.rid.value()));
  for (const auto* s : {w.s1.get(), w.s2.get(), w.s3.get()})
    std::fprintf(stderr, "  (w%d is replica %llu)\n",
                 s == w.s1.get() ? 1 : s == w.s2.get() ? 2 : 3,
                 static_cast<unsigned long long>(s->self_id().value()));
}

void apply_data(const fuzz::world& w, const protocol::signed_reply& r) {
  describe(w, r);
  auto s = w.receiver_store();
  auto st = s->apply(r);
  if (!st)
    return;
  if (auto c = s->check_topic(r.topic); !c)
    fuzz::invariant_failed("check_topic fails after a successful apply", c.err().message);
  auto again = s->apply(r);
  if (!again)
    fuzz::invariant_failed("applying the same reply twice fails", again.err().message);
  if (again->new_dots != 0)
    fuzz::invariant_failed("applying the same reply twice adds dots");
  if (auto c = s->check_topic(r.topic); !c)
    fuzz::invariant_failed("check_topic fails after a repeated apply", c.err().message);
  auto rows = fuzz::must(s->index_rows(), "index_rows");
  (void)fuzz::must(s->reindex(), "reindex");
  if (fuzz::must(s->index_rows(), "index_rows") != rows)
    fuzz::invariant_failed("incremental indexes differ from a rebuild");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1)
    return 0;
  const bool resigned = (data[0] & 1) != 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto& w = the_world();
  auto m = protocol::decode_message(in);
  if (!m)
    return 0;
  if (auto* h = std::get_if<protocol::hello_msg>(&*m)) {
    if (resigned)
      resign(w, h->binding);
    (void)protocol::check_binding(h->binding);
  } else if (auto* o = std::get_if<protocol::offer_msg>(&*m)) {
    auto s = w.receiver_store();
    for (auto& t : o->topics) {
      if (resigned)
        resign(w, t);
      std::string why;
      const bool ok = protocol::check_topic(t, &why);
      auto added = s->add_topic(t);
      if (ok != added.ok())
        fuzz::invariant_failed("store::add_topic and check_topic disagree", why);
      (void)protocol::may_write(t, w.w1.pub());
    }
  } else if (auto* d = std::get_if<protocol::data_msg>(&*m)) {
    if (resigned)
      resign(w, d->reply);
    apply_data(w, d->reply);
  }
  return 0;
}
