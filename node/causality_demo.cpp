// kith-causality-demo: three in-process replicas of one topic write,
// partition, write concurrently, delete and converge, printing each step.
// This is the README's main job until the node and relay exist.
#include "kith/causality/codec.hpp"
#include "kith/causality/replica.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

using namespace kith::causality;

namespace {

const char* const names[] = {"alice", "bob", "carol"};

std::string show(const replica& r, const key_type& k) {
  auto res = r.read(k);
  if (res.values.empty())
    return "(absent)";
  std::sort(res.values.begin(), res.values.end());
  std::string out;
  for (const auto& v : res.values)
    out += (out.empty() ? "" : " | ") + v;
  return res.values.size() > 1 ? "siblings {" + out + "}" : out;
}

void print_state(const std::vector<replica>& g, const std::vector<key_type>& keys) {
  for (std::size_t i = 0; i < g.size(); ++i) {
    std::printf("    %-6s", names[i]);
    for (const auto& k : keys)
      std::printf("  %s=%-24s", k.c_str(), show(g[i], k).c_str());
    std::printf(" clock=%zuB dkm=%zu unstripped=%zu\n", encoded_size(g[i].clock()),
                g[i].dkm().size(), g[i].unstripped().size());
  }
}

void pull(std::vector<replica>& g, std::size_t to, std::size_t from) {
  const auto req = g[to].make_request();
  const auto reply = g[from].answer(req);
  const auto split = split_of(reply);
  std::printf("  %s pulls from %s: request %zu B, reply %llu B (%zu keys; data %llu, per-key %llu, sync %llu)\n",
              names[to], names[from], encoded_size(req),
              static_cast<unsigned long long>(split.total()), reply.changes.entries.size(),
              static_cast<unsigned long long>(split.data),
              static_cast<unsigned long long>(split.key_meta),
              static_cast<unsigned long long>(split.sync_meta));
  g[to].apply(reply);
}

void push(std::vector<replica>& g, const delta& d, std::size_t from, std::vector<std::size_t> to) {
  for (auto i : to)
    g[i].receive(d);
  std::printf("  %s pushes %zu B to", names[from], encoded_size(d));
  for (auto i : to)
    std::printf(" %s", names[i]);
  std::printf(to.empty() ? " nobody (partitioned)\n" : "\n");
}

} // namespace

int main() {
  std::vector<replica> g{replica{replica_id{1}}, replica{replica_id{2}}, replica{replica_id{3}}};
  for (auto& r : g)
    r.set_members({replica_id{1}, replica_id{2}, replica_id{3}});
  const std::vector<key_type> keys{"profile/name", "status/1"};

  std::printf("step 1: alice writes her name and a status; everyone receives it\n");
  push(g, g[0].put("profile/name", "Alice", {}), 0, {1, 2});
  push(g, g[0].put("status/1", "hello #kith", {}), 0, {1, 2});
  print_state(g, keys);

  std::printf("\nstep 2: partition {alice, bob} | {carol}; bob and carol edit the name concurrently\n");
  push(g, g[1].put("profile/name", "Alice B.", g[1].read("profile/name").context), 1, {0});
  push(g, g[2].put("profile/name", "Alice C.", g[2].read("profile/name").context), 2, {});
  std::printf("  alice deletes status/1 (carol is cut off)\n");
  push(g, g[0].erase("status/1", g[0].read("status/1").context), 0, {1});
  print_state(g, keys);

  std::printf("\nstep 3: the partition heals; anti-entropy pulls between every pair\n");
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      if (i != j)
        pull(g, i, j);
  print_state(g, keys);

  std::printf("\nstep 4: alice reads both siblings and writes a resolution\n");
  push(g, g[0].put("profile/name", "Alice", g[0].read("profile/name").context), 0, {1, 2});
  std::printf("  a second round of pulls spreads the watermark; replicas re-strip\n");
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      if (i != j)
        pull(g, i, j);
  for (auto& r : g)
    r.restrip();
  print_state(g, keys);

  bool same = true, clean = true;
  for (const auto& r : g) {
    same = same && r.store() == g[0].store() && r.clock() == g[0].clock();
    clean = clean && r.dkm().empty() && r.unstripped().empty() && r.check_invariant();
  }
  std::printf("\nconverged: %s; no tombstones, empty dot-key maps, stripped keys: %s\n",
              same ? "yes" : "NO", clean ? "yes" : "NO");
  return same && clean ? 0 : 1;
}
