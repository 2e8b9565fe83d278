#include "kith/causality/replica.hpp"

#include <algorithm>

namespace kith::causality {

replica::replica(replica_id self) : self_(self) {
  marks_.set_members({self});
}

void replica::set_members(std::vector<replica_id> members) {
  members.push_back(self_);
  marks_.set_members(std::move(members));
  marks_.observe(self_, clock_);
}

void replica::retire(replica_id id) {
  if (id == self_)
    return;
  marks_.retire(id);
  prune();
}

void replica::close_retired(replica_id id) {
  if (id == self_)
    return;
  // The highest dot of id we know of: held in the clock, or named by a
  // stored context (a write that saw it, made by someone who had it).
  std::uint64_t top = 0;
  if (const clock_entry* e = clock_.find(id))
    top = e->max();
  for (const auto& k : unstripped_)
    top = std::max(top, store_.at(k).context().get(id));
  if (top == 0)
    return;
  clock_.join_entry(id, clock_entry{top, {}});
  marks_.observe(self_, clock_);
  restrip();
  prune();
}

std::optional<container> replica::load(const key_type& k) const {
  auto i = store_.find(k);
  if (i == store_.end())
    return std::nullopt;
  return i->second;
}

read_result replica::read(const key_type& k) const {
  read_result r;
  auto i = store_.find(k);
  if (i != store_.end()) {
    r.values = i->second.values();
    r.context = i->second.read_context();
  }
  return r;
}

delta replica::write(const key_type& k, sibling s, const version_vector& read_context) {
  container c = load(k).value_or(container{});
  c.fill(clock_);
  c.discard(read_context);
  const dot d = clock_.event(self_);
  c.add(d, std::move(s));
  dkm_.insert(d, k);

  delta out{self_, clock_.base_only(), {}};
  container sent = c;
  sent.strip(clock_);
  out.entries.push_back({k, std::move(sent), {}});

  c.drop_delete_markers();
  c.strip(clock_);
  store_key({k, std::move(c)});
  marks_.observe(self_, clock_);
  return out;
}

void replica::receive(const delta& d) {
  commit(plan_apply(clock_, *this, d, false));
}

sync_request replica::make_request() const {
  return {self_, clock_};
}

sync_reply replica::answer(const sync_request& req) {
  // What the asker has tells us how far it got: keep it in the watermark.
  marks_.observe(req.from, req.clock);
  prune();
  sync_reply r;
  r.changes.from = self_;
  r.changes.clock = clock_;
  r.changes.entries = plan_reply_entries(clock_, dkm_, *this, req.clock);
  r.marks = marks_;
  return r;
}

void replica::apply(const sync_reply& reply) {
  commit(plan_repair(clock_, *this, reply));
  marks_.observe(reply.changes.from, reply.changes.clock);
  marks_.merge(reply.marks);
  prune();
}

sync_reply replica::snapshot() const {
  // Every stored key, plus the keys the dot-key map still names (deleted
  // ones travel as empty containers), each with the dots it resolves, so
  // the receiver can serve those dots to others as we would.
  std::map<key_type, std::vector<dot>> resolves;
  for (const auto& [k, c] : store_)
    resolves[k];
  for (const auto& [origin, row] : dkm_.rows())
    for (const auto& [n, k] : row)
      resolves[k].push_back(dot{origin, counter{n}});
  sync_reply r;
  r.changes.from = self_;
  r.changes.clock = clock_;
  for (auto& [k, dots] : resolves) {
    container c = load(k).value_or(container{});
    dots.erase(std::remove_if(dots.begin(), dots.end(), [&](dot d) { return c.holds(d); }),
               dots.end());
    r.changes.entries.push_back({k, std::move(c), std::move(dots)});
  }
  r.marks = marks_;
  return r;
}

void replica::apply_snapshot(const sync_reply& snap) {
  // Keys we hold that the snapshot does not list are absent at the sender:
  // merging them as empty containers filled with the sender's clock deletes
  // whatever the sender's clock covers, and keeps the rest.
  delta d = snap.changes;
  std::set<key_type> listed;
  for (const auto& e : d.entries)
    listed.insert(e.key);
  for (const auto& [k, c] : store_)
    if (listed.count(k) == 0)
      d.entries.push_back({k, container{}, {}});
  apply_plan plan = plan_apply(clock_, *this, d, true);
  commit(plan);
  // The sender sent its whole state, so its whole clock is covered now.
  clock_.merge(snap.changes.clock);
  marks_.observe(snap.changes.from, snap.changes.clock);
  marks_.merge(snap.marks);
  restrip();
  prune();
}

void replica::commit(const apply_plan& plan) {
  for (const auto& [d, k] : plan.new_dots) {
    clock_.add(d);
    dkm_.insert(d, k);
  }
  if (plan.sender_entry)
    clock_.join_entry(plan.sender_entry->first, plan.sender_entry->second);
  for (const auto& c : plan.changes)
    store_key(c);
  marks_.observe(self_, clock_);
}

void replica::store_key(const key_change& c) {
  if (c.stored.empty()) {
    store_.erase(c.key);
    unstripped_.erase(c.key);
    return;
  }
  store_[c.key] = c.stored;
  if (c.stored.context().empty())
    unstripped_.erase(c.key);
  else
    unstripped_.insert(c.key);
}

std::size_t replica::restrip() {
  std::size_t done = 0;
  for (auto i = unstripped_.begin(); i != unstripped_.end();) {
    auto s = store_.find(*i);
    if (s == store_.end()) {
      i = unstripped_.erase(i);
      continue;
    }
    s->second.strip(clock_);
    if (!s->second.context().empty()) {
      ++i;
      continue;
    }
    ++done;
    if (s->second.dots().empty())
      store_.erase(s);
    i = unstripped_.erase(i);
  }
  return done;
}

void replica::prune() {
  std::vector<replica_id> origins;
  for (const auto& [origin, row] : dkm_.rows())
    origins.push_back(origin);
  for (auto origin : origins)
    dkm_.prune(origin, marks_.row_min(origin));
}

bool replica::check_invariant() const {
  if (!clock_.check_invariant())
    return false;
  if (const auto* own = clock_.find(self_); own != nullptr && !own->bits().empty())
    return false;
  for (const auto& [k, c] : store_) {
    if (c.empty() || !c.check_invariant())
      return false;
    for (const auto& [d, s] : c.dots())
      if (s.deleted || !clock_.contains(d))
        return false;
    if (c.context().empty() == (unstripped_.count(k) != 0))
      return false;
  }
  for (const auto& k : unstripped_)
    if (store_.count(k) == 0)
      return false;
  return true;
}

} // namespace kith::causality
