// The `kith` program. Issue 3 brings the commands that work on the local
// store (init, id, put, get, del, post, feed, tag, reindex, check); the
// daemon and its network commands come with issue 4, after which the
// document commands go through the running daemon's local API.

#include "kith/node/data_dir.hpp"
#include "kith/storage/documents.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>

namespace {

using namespace kith;

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

int fail(const storage::error& e) {
  std::cerr << "kith: " << e.message << "\n";
  return e.code == storage::errc::not_found ? 3 : 1;
}

struct opened {
  protocol::identity id;
  std::unique_ptr<storage::store> store;
};

storage::result<opened> open_node(const node::data_dir& dir) {
  auto id = dir.load_identity();
  if (!id)
    return id.err();
  // A missing store (lost or never made) is created with a fresh replica
  // id: the node then counts as a new replica for its peers.
  auto s = storage::store::open(dir.store_dir(), *id, true);
  if (!s)
    return s.err();
  return opened{std::move(*id), std::move(s.value())};
}

std::string expand_subject(const std::string& s, const protocol::identity& id) {
  if (s.rfind("me/", 0) == 0)
    return protocol::to_text(id.pub()) + s.substr(2);
  return s;
}

void print(const storage::json& j) {
  std::cout << j.dump(2) << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kith: your own node of a peer-to-peer social network"};
  app.require_subcommand(1);
  std::string home = node::data_dir::default_path();
  app.add_option("-d,--data-dir", home, "data directory (default $KITH_HOME or ~/.kith)");

  auto* init = app.add_subcommand("init", "create this node's identity and store");
  bool force = false;
  init->add_flag("--force", force,
                 "replace an existing identity (the old key and store are moved aside)");

  auto* id = app.add_subcommand("id", "print this node's id (share it so others can follow you)");
  bool show_replica = false;
  id->add_flag("--replica", show_replica, "also print the replica id of this node's store");

  std::string subject, text, topic, predicate, ctx_text, tag, author;
  std::size_t limit = 20;
  auto* put = app.add_subcommand("put", "write a JSON document (each property is one key)");
  put->add_option("subject", subject, "<id>/<path>, or me/<path>")->required();
  put->add_option("json", text, "a JSON object")->required();
  put->add_option("--topic", topic, "topic (default: the author's feed)");
  put->add_option("--context", ctx_text,
                  "contexts from a get ({\"prop\": {...}}) to replace exactly what was read");

  auto* get = app.add_subcommand("get", "read a document, with conflicts and contexts");
  get->add_option("subject", subject)->required();
  get->add_option("--topic", topic);

  auto* del = app.add_subcommand("del", "delete a document, or one of its properties");
  del->add_option("subject", subject)->required();
  del->add_option("predicate", predicate);
  del->add_option("--topic", topic);

  auto* post = app.add_subcommand("post", "post a status; #tags and @mentions are indexed");
  post->add_option("text", text)->required();

  auto* feed = app.add_subcommand("feed", "the newest statuses of an author (default: you)");
  feed->add_option("--limit", limit)->check(CLI::Range(1, 10000));
  feed->add_option("--author", author, "an id");

  auto* tagc = app.add_subcommand("tag", "the newest statuses carrying #tag");
  tagc->add_option("tag", tag)->required();
  tagc->add_option("--limit", limit)->check(CLI::Range(1, 10000));

  auto* reindex = app.add_subcommand("reindex", "drop and rebuild the derived indexes");
  auto* check = app.add_subcommand("check", "verify every stored write against its signature");

  CLI11_PARSE(app, argc, argv);
  node::data_dir dir(home);

  if (init->parsed()) {
    auto fresh = protocol::identity::generate();
    auto moved = dir.create_identity(fresh, force);
    if (!moved)
      return fail(moved.err());
    if (!moved->empty())
      std::cerr << "kith: the previous identity and store were moved to " << *moved << "\n";
    auto s = storage::store::open(dir.store_dir(), fresh, true);
    if (!s)
      return fail(s.err());
    std::cerr << "kith: created a new identity in " << dir.path() << "\n";
    std::cout << protocol::to_text(fresh.pub()) << "\n";
    return 0;
  }
  if (id->parsed() && !show_replica) {
    auto who = dir.load_identity();
    if (!who)
      return fail(who.err());
    std::cout << protocol::to_text(who->pub()) << "\n";
    return 0;
  }

  auto n = open_node(dir);
  if (!n)
    return fail(n.err());
  storage::store& st = *n->store;
  storage::documents docs(st);

  if (id->parsed()) {
    std::cout << protocol::to_text(n->id.pub()) << "\nreplica " << st.self_id().value() << "\n";
    return 0;
  }
  if (put->parsed()) {
    auto obj = storage::json::parse(text, nullptr, false);
    if (obj.is_discarded())
      return fail({storage::errc::invalid, "the document is not valid JSON"});
    auto ctx = ctx_text.empty() ? storage::json::object()
                                : storage::json::parse(ctx_text, nullptr, false);
    if (ctx.is_discarded())
      return fail({storage::errc::invalid, "--context is not valid JSON"});
    auto r = docs.put(expand_subject(subject, n->id), obj, now_ms(), topic, ctx);
    if (!r)
      return fail(r.err());
    std::cerr << "kith: wrote " << r->size() << " propert" << (r->size() == 1 ? "y" : "ies")
              << "\n";
    return 0;
  }
  if (get->parsed()) {
    auto r = docs.get(expand_subject(subject, n->id), topic);
    if (!r)
      return fail(r.err());
    if (r->is_null()) {
      std::cerr << "kith: no such document\n";
      return 3;
    }
    print(*r);
    return 0;
  }
  if (del->parsed()) {
    std::optional<std::string> p;
    if (!predicate.empty())
      p = predicate;
    auto r = docs.del(expand_subject(subject, n->id), p, now_ms(), topic);
    if (!r)
      return fail(r.err());
    std::cerr << "kith: deleted " << *r << " key(s)\n";
    return *r == 0 ? 3 : 0;
  }
  if (post->parsed()) {
    auto r = docs.post(text, now_ms());
    if (!r)
      return fail(r.err());
    std::cout << *r << "\n";
    return 0;
  }
  if (feed->parsed()) {
    protocol::public_key who = n->id.pub();
    if (!author.empty()) {
      std::string why;
      auto pk = protocol::parse_id(author, &why);
      if (!pk)
        return fail({storage::errc::invalid, "--author: " + why});
      who = *pk;
    }
    auto r = docs.feed(who, limit);
    if (!r)
      return fail(r.err());
    print(*r);
    return 0;
  }
  if (tagc->parsed()) {
    auto r = docs.tagged(tag, limit);
    if (!r)
      return fail(r.err());
    print(*r);
    return 0;
  }
  if (reindex->parsed()) {
    auto t0 = std::chrono::steady_clock::now();
    std::cerr << "kith: rebuilding indexes...\n";
    auto r = st.reindex();
    if (!r)
      return fail(r.err());
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0).count();
    std::cerr << "kith: wrote " << *r << " index rows in " << ms << " ms\n";
    return 0;
  }
  if (check->parsed()) {
    int bad = 0;
    for (const auto& t : st.topics()) {
      auto r = st.check_topic(t);
      std::cout << t << ": " << (r ? "ok" : r.err().message) << "\n";
      bad += r ? 0 : 1;
    }
    return bad == 0 ? 0 : 1;
  }
  return 0;
}
