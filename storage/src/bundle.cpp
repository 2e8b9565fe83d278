#include "kith/storage/bundle.hpp"

namespace kith::storage {

result<std::string> export_bundle(store& s, const protocol::identity& self,
                                  const std::string& topic, std::size_t page_keys) {
  auto d = s.topic(topic);
  if (!d)
    return error{errc::not_found, "this node does not hold topic " + topic};
  if (self.pub() != s.author())
    return error{errc::invalid, "a bundle is signed by the store's own identity"};
  protocol::bundle_writer w(self, s.binding(), *d);
  std::string after;
  for (;;) {
    auto p = s.page(topic, after, page_keys);
    if (!p)
      return p.err();
    w.add(p->reply);
    if (p->complete)
      break;
    after = p->next_after;
  }
  return w.finish();
}

result<bundle_stats> import_bundle(store& s, const protocol::bundle& b) {
  bundle_stats out;
  out.topic = b.topic.id;
  if (!s.topic(b.topic.id)) {
    if (auto st = s.add_topic(b.topic); !st)
      return st.err();
  }
  for (const auto& page : b.pages) {
    auto r = s.apply(page);
    if (!r)
      return error{r.err().code, "page " + std::to_string(out.pages) + ": " + r.err().message};
    ++out.pages;
    out.entries += page.entries.size();
    out.keys_changed += r->keys_changed;
    out.new_dots += r->new_dots;
  }
  if (!b.pages.empty() && b.exporter.rid != s.self_id()) {
    // The bundle is the exporter's whole state, signed: its author's
    // writes it no longer held when exporting are obsolete here too.
    causality::node_clock held;
    for (const auto& page : b.pages)
      for (const auto& e : page.entries)
        for (const auto& [d, body] : e.records)
          held.add(d);
    if (auto st = s.join_sender_entry(b.topic.id, b.exporter.rid, b.pages.front().clock, &held);
        !st)
      return st.err();
  }
  return out;
}

} // namespace kith::storage
