// Key actor benchmark (not part of ctest; docs/architecture.md, "Key
// actors", has the figures and the command):
//
//   1. a repair of N keys (an anti-entropy answer from a replica that holds
//      N keys we lack) applied through the topic actor in parts, the way a
//      peer actor applies an answer (batched path);
//   2. the same repair applied one key per message through key actors
//      (kapply: the topic spawns each key's actor, which asks the topic to
//      commit its one-key merge and keeps the key's state) (per-key path);
//   3. the resident memory of K active, idle key actors.
//
// Each path runs on its own fresh RocksDB store in a temp dir (fsync off);
// both are checked against the source afterwards. Real CAF scheduler (2
// threads), so timings are wall-clock.

#include "support/proc.hpp"
#include "kith/actors/node.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <string>

using namespace kith;
using namespace kith::actors;

namespace {

/// A field of /proc/self/status in kB (VmRSS, VmHWM), 0 if unreadable.
std::uint64_t proc_kb(const char* field) { return kith::bench::status_kib(::getpid(), field); }

/// Resets the peak RSS (VmHWM) to the current RSS; false if the kernel
/// does not allow it (then peaks are since the start of the process).
bool reset_peak() {
  malloc_trim(0);
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

using kith::bench::parse_u64;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Sends every message made by make(i), i < count, to the topic actor with
/// at most `window` unanswered; returns the failures (first reason kept).
template <class Reply, class Make>
std::size_t pipeline(caf::actor_system& sys, const topic_actor& topic, std::size_t count,
                     std::size_t window, Make make, std::string& first_error) {
  struct run_state {
    std::size_t sent = 0, done = 0, failed = 0;
    std::string error;
    std::promise<void> finished;
  };
  auto rs = std::make_shared<run_state>();
  auto fut = rs->finished.get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    auto next = std::make_shared<std::function<void()>>();
    *next = [=] {
      while (rs->sent < count && rs->sent - rs->done < window) {
        auto msg = make(rs->sent++);
        auto on_reply = [=](const Reply& r) {
          if (!r.ok) {
            if (rs->failed++ == 0)
              rs->error = r.reason;
          }
          if (++rs->done == count) {
            rs->finished.set_value();
            self->quit();
          } else {
            (*next)();
          }
        };
        std::apply([&](auto&&... xs) {
          self->request(topic, caf::infinite, xs...).then(on_reply, [=](caf::error& e) {
            if (rs->failed++ == 0)
              rs->error = self->system().render(e);
            if (++rs->done == count) {
              rs->finished.set_value();
              self->quit();
            } else {
              (*next)();
            }
          });
        }, std::move(msg));
      }
    };
    if (count == 0) {
      rs->finished.set_value();
      self->quit();
      return;
    }
    (*next)();
  });
  fut.wait();
  first_error = rs->error;
  return rs->failed;
}

struct target {
  std::filesystem::path dir;
  std::shared_ptr<node_env> env;
  node_actor node;
  topic_actor topic;
};

target open_target(caf::actor_system& sys, std::uint64_t seed, std::uint64_t n, const protocol::topic_descriptor& t,
                   const std::string& label) {
  target out;
  out.dir = std::filesystem::temp_directory_path() /
            ("kith-key-bench-" + std::to_string(seed) + "-" + label + "-" +
             std::to_string(::getpid()));
  std::filesystem::remove_all(out.dir);
  auto id = protocol::identity::from_seed(seed_for(seed, n));
  storage::store_options o;
  o.sync = false;
  o.replica_nonce = seed * 100 + n + 1;
  auto st = storage::store::open(out.dir.string(), id, true, o);
  if (!st) {
    std::cerr << "cannot open a store in " << out.dir << ": " << st.err().message << "\n";
    std::exit(1);
  }
  if (auto a = st.value()->add_topic(t); !a) {
    std::cerr << "cannot add the topic: " << a.err().message << "\n";
    std::exit(1);
  }
  out.env = std::make_shared<node_env>(id, std::move(st.value()));
  out.env->rng = std::make_shared<entropy>(seed_for(seed, 1000 + n));
  // No transport: this node follows nobody and listens nowhere.
  // Long enough that every key activated in the run is still alive at
  // its end: the worst case for memory.
  out.env->settings.key_idle = std::chrono::minutes(30);
  out.node = spawn_node(sys, out.env);
  caf::scoped_actor self{sys};
  self->request(out.node, caf::infinite, topic_atom::value, t.id)
      .receive([&](const topic_actor& h) { out.topic = h; },
               [&](caf::error& e) { std::cerr << "no topic actor: " << sys.render(e) << "\n"; });
  if (!out.topic)
    std::exit(1);
  return out;
}

topic_info status_of(caf::actor_system& sys, const topic_actor& t) {
  caf::scoped_actor self{sys};
  topic_info out;
  self->request(t, caf::infinite, status_atom::value).receive(
      [&](const topic_info& i) { out = i; }, [](caf::error&) {});
  return out;
}

/// Every key of the topic and its values/dots, as text, for comparing stores.
std::string digest(storage::store& s, const std::string& topic) {
  auto rows = s.read_prefix(topic, "");
  if (!rows)
    return "error: " + rows.err().message;
  std::string out;
  for (const auto& [k, v] : *rows) {
    out += k;
    for (const auto& sib : v.siblings)
      out += "|" + std::to_string(sib.d.id.value()) + ":" + std::to_string(sib.d.n.value()) + "=" +
             sib.value;
    out += "\n";
  }
  return out;
}

void stop(caf::actor_system&, target& t) {
  caf::anon_send(t.node, stop_atom::value);
}

/// What one repair path left: its target (still running; stop it when done
/// with it) and what the run saw.
struct repair_result {
  target tgt;
  std::size_t failed = 0;     // apply requests that failed
  bool same = false;          // the target's store reads back as the source's
  std::size_t key_actors = 0; // alive after the repair
};

/// Applies `repair` to a fresh target (store n, named label) through its
/// topic actor as `atom` messages (apply_atom: batched; kapply_atom: one
/// key's actor each) of split_reply parts of at most part_bytes (0: the
/// node's max_part_bytes), `window` in flight, and prints the phase's line;
/// `via(parts, part_bytes)` says which path it took.
template <class Atom, class Via>
repair_result apply_repair(caf::actor_system& sys, std::uint64_t seed, std::uint64_t n,
                           const protocol::topic_descriptor& topic, const std::string& label,
                           const protocol::signed_reply& repair, std::size_t part_bytes,
                           Atom atom, std::size_t window, const std::string& want, Via via) {
  repair_result r;
  r.tgt = open_target(sys, seed, n, topic, label);
  if (part_bytes == 0)
    part_bytes = r.tgt.env->settings.max_part_bytes;
  const auto parts = protocol::split_reply(repair, part_bytes);
  const bool peak_ok = reset_peak();
  const auto rss0 = proc_kb("VmRSS");
  std::string err;
  const auto t = std::chrono::steady_clock::now();
  r.failed = pipeline<apply_result>(
      sys, r.tgt.topic, parts.size(), window,
      [&](std::size_t i) { return std::make_tuple(atom, parts[i], caf::actor{}); }, err);
  const double secs = seconds_since(t);
  r.key_actors = status_of(sys, r.tgt.topic).key_actors;
  r.same = digest(*r.tgt.env->store, topic.id) == want;
  std::printf("[%s] repair through %s: %.2f s, %.0f entries/s, peak RSS %llu MB (%s; %llu MB "
              "before), key actors alive %zu, failures %zu%s%s, store %s the source\n",
              label.c_str(), via(parts.size(), part_bytes).c_str(), secs,
              repair.entries.size() / secs,
              static_cast<unsigned long long>(proc_kb("VmHWM") / 1024),
              peak_ok ? "reset before the phase" : "since process start",
              static_cast<unsigned long long>(rss0 / 1024), r.key_actors, r.failed,
              err.empty() ? "" : ": ", err.c_str(), r.same ? "matches" : "DOES NOT match");
  return r;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t keys = 100'000, active = 100'000, seed = 1, window = 64, per_doc = 4;
  std::string phase; // empty: run every phase, each in its own process
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::uint64_t& out) {
      if (i + 1 >= argc || !parse_u64(argv[i + 1], out)) {
        std::cerr << a << " needs a whole number\n";
        std::exit(2);
      }
      ++i;
    };
    if (a == "--keys")
      value(keys);
    else if (a == "--active")
      value(active);
    else if (a == "--seed")
      value(seed);
    else if (a == "--window")
      value(window);
    else if (a == "--per-doc")
      value(per_doc);
    else if (a == "--phase" && i + 1 < argc &&
             (std::string(argv[i + 1]) == "batched" || std::string(argv[i + 1]) == "perkey"))
      phase = argv[++i];
    else {
      std::cerr << "usage: kith-key-actor-bench [--keys N] [--active K] [--seed S] "
                   "[--window W] [--per-doc P]\n"
                   "  N keys in the repair (default 100000), K key actors for the idle-memory\n"
                   "  figure (default 100000), W requests in flight (default 64), P keys per\n"
                   "  source document write (one signed batch each; default 4).\n"
                   "  Each phase runs in a child process (--phase batched|perkey) so that\n"
                   "  their memory figures do not mix.\n";
      return 2;
    }
  }
  if (keys == 0 || per_doc == 0 || window == 0 || per_doc > 1000) {
    std::cerr << "--keys, --window and --per-doc must be > 0 (--per-doc at most 1000)\n";
    return 2;
  }
  if (phase.empty()) {
    std::printf("seed %llu, keys %llu, keys per document %llu, window %llu, active %llu\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(keys),
                static_cast<unsigned long long>(per_doc), static_cast<unsigned long long>(window),
                static_cast<unsigned long long>(active));
    std::fflush(stdout);
    int rc = 0;
    for (const char* ph : {"batched", "perkey"}) {
      std::string cmd = "'/proc/" + std::to_string(::getpid()) + "/exe' --phase " + ph +
                        " --keys " + std::to_string(keys) + " --active " + std::to_string(active) +
                        " --seed " + std::to_string(seed) + " --window " + std::to_string(window) +
                        " --per-doc " + std::to_string(per_doc);
      if (std::system(cmd.c_str()) != 0)
        rc = 1;
    }
    std::printf("%s\n", rc == 0 ? "ok" : "FAILED");
    return rc;
  }

  // The source replica: N keys written as documents of `per_doc` keys.
  auto src_id = protocol::identity::from_seed(seed_for(seed, 0));
  storage::store_options so;
  so.sync = false;
  so.replica_nonce = seed * 100 + 1;
  auto src = storage::store::open(storage::make_memory_kv(), src_id, so);
  if (!src) {
    std::cerr << "source store: " << src.err().message << "\n";
    return 1;
  }
  auto& source = *src.value();
  const auto topic = protocol::feed_topic(src_id.pub());
  const std::string me = protocol::to_text(src_id.pub());
  // The replica that will ask is a member, so the source keeps the map of
  // its writes to keys until that member has them (as for a follower).
  causality::sync_request fresh;
  fresh.from = causality::replica_id{seed * 100 + 99};
  if (auto m = source.set_members(topic.id, {fresh.from}); !m) {
    std::cerr << "source members: " << m.err().message << "\n";
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < keys; i += per_doc) {
    std::vector<storage::write_op> ops;
    for (std::uint64_t j = i; j < std::min(keys, i + per_doc); ++j) {
      std::string k = me + "/doc/" + std::to_string(i / per_doc);
      k.push_back('\0');
      k += "p" + std::to_string(j - i);
      ops.push_back({k, "\"value " + std::to_string(j) + "\"", {}});
    }
    if (auto w = source.write(topic.id, ops, 1'700'000'000'000 + i); !w) {
      std::cerr << "source write: " << w.err().message << "\n";
      return 1;
    }
  }
  auto repair = source.answer(topic.id, fresh);
  if (!repair || repair->entries.size() != keys) {
    std::cerr << "the source's answer does not hold " << keys << " keys ("
              << (repair ? std::to_string(repair->entries.size()) : repair.err().message) << ")\n";
    return 1;
  }
  // Both paths get the entries in write order (by first dot): the clock
  // then grows without gaps, so each commit strips its keys' contexts at
  // once. In the answer's key order the clock has gaps until the end and
  // every commit re-reads all still-unstripped keys (store::commit's
  // TODO(perf)), which is quadratic for the per-key path.
  auto first_dot = [](const protocol::signed_entry& e) {
    return e.records.empty() ? causality::dot{causality::replica_id{~0ull}, causality::counter{0}}
                             : e.records.front().first;
  };
  std::stable_sort(repair->entries.begin(), repair->entries.end(),
                   [&](const auto& a, const auto& b) { return first_dot(a) < first_dot(b); });
  std::printf("[%s] source: %llu keys written and answered in %.2f s\n", phase.c_str(),
              static_cast<unsigned long long>(keys), seconds_since(t0));
  const std::string want = digest(source, topic.id);

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  int status = 0;

  // 1. Batched: parts of at most max_part_bytes, as a peer actor applies
  // an answer.
  if (phase == "batched") {
    auto run = apply_repair(sys, seed, 1, topic, "batched", *repair, 0, apply_atom::value, window,
                            want, [](std::size_t parts, std::size_t bytes) {
                              return "the topic actor (" + std::to_string(parts) +
                                     " parts of <= " + std::to_string(bytes) + " bytes)";
                            });
    auto& tgt = run.tgt;
    if (run.failed || !run.same)
      status = 1;

    // 3. Idle memory of K active key actors on this store (every key read
    // once, then left alone).
    const std::uint64_t k = std::min(active, keys);
    std::vector<std::string> ks;
    ks.reserve(k);
    for (std::size_t i = 0; i < k; ++i)
      ks.push_back(repair->entries[i].key);
    malloc_trim(0);
    const auto before = proc_kb("VmRSS");
    const auto t = std::chrono::steady_clock::now();
    std::size_t read_failures = 0;
    {
      // kget answers a key_state; adapt it to the pipeline's ok/reason.
      caf::scoped_actor self{sys};
      std::size_t next = 0, done = 0;
      std::size_t inflight = 0;
      while (done < k) {
        while (next < k && inflight < window) {
          self->send(tgt.topic, kget_atom::value, ks[next++]);
          ++inflight;
        }
        self->receive([&](const key_state& s) {
          if (!s.error.empty() || s.view.siblings.empty())
            ++read_failures;
          ++done;
          --inflight;
        });
      }
    }
    const double act_secs = seconds_since(t);
    malloc_trim(0);
    const auto after = proc_kb("VmRSS");
    const auto info2 = status_of(sys, tgt.topic);
    std::printf("[batched] idle key actors: %zu alive after activating %llu keys in %.2f s (%.0f/s); RSS "
                "%llu -> %llu MB, %.0f bytes per active key actor (key state included), "
                "failed reads %zu\n",
                info2.key_actors, static_cast<unsigned long long>(k), act_secs, k / act_secs,
                static_cast<unsigned long long>(before / 1024),
                static_cast<unsigned long long>(after / 1024),
                k ? (after > before ? (after - before) * 1024.0 / k : 0.0) : 0.0, read_failures);
    if (read_failures || info2.key_actors != k)
      status = 1;
    stop(sys, tgt);
  }

  // 2. Per key: one message per key, through each key's actor.
  if (phase == "perkey") {
    // Parts of at most 1 byte: one entry each, in order.
    auto run = apply_repair(sys, seed, 2, topic, "perkey", *repair, 1, kapply_atom::value, window,
                            want, [](std::size_t parts, std::size_t) {
                              return "key actors (" + std::to_string(parts) + " one-key messages)";
                            });
    if (run.failed || !run.same || run.key_actors != keys)
      status = 1;
    stop(sys, run.tgt);
  }

  // Let the nodes (and with them the topic and key actors) stop before
  // their stores' directories go.
  sys.await_all_actors_done();
  std::error_code ec;
  for (const char* l : {"batched", "perkey"})
    std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                    ("kith-key-bench-" + std::to_string(seed) + "-" + l + "-" +
                                     std::to_string(::getpid())),
                                ec);
  return status;
}
