// The `kith` program: `run` is the daemon; the other commands are its
// clients. Document commands (put, get, del, post, feed, tag) go through
// the running daemon's local API; with no daemon running they open the
// store directly (the store's lock keeps the two from overlapping).
// status, peers, follow and unfollow need the daemon.

#include "kith/node/api_client.hpp"
#include "kith/node/daemon.hpp"
#include "kith/node/data_dir.hpp"
#include "kith/node/pipe_sync.hpp"
#include "kith/storage/bundle.hpp"
#include "kith/storage/documents.hpp"

#include <CLI/CLI.hpp>
#include <malloc.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

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

struct daemon_reply {
  int status = 0;
  storage::json body;
};

/// A call to the running daemon, body as bytes: nullopt when none answers
/// (a stale api.addr after a crash counts as none).
std::optional<node::api_result> call_daemon_raw(const node::data_dir& dir, const std::string& method,
                                                const std::string& target,
                                                const std::optional<std::string>& body,
                                                const std::string& content_type,
                                                std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto where = node::daemon_api_address(dir);
  if (!where)
    return std::nullopt;
  auto r = node::call_api(where->first, where->second, method, target, body, content_type, timeout);
  if (!r.ok)
    return std::nullopt;
  return r;
}

/// A JSON call to the running daemon: nullopt when none answers.
std::optional<daemon_reply> call_daemon(const node::data_dir& dir, const std::string& method,
                                        const std::string& target,
                                        const std::optional<storage::json>& body = std::nullopt) {
  std::optional<std::string> text;
  if (body)
    text = body->dump();
  auto r = call_daemon_raw(dir, method, target, text, "application/json");
  if (!r)
    return std::nullopt;
  return daemon_reply{r->status, storage::json::parse(r->body, nullptr, false)};
}

/// Prints an API error and maps it to an exit code.
int fail_reply(const daemon_reply& r) {
  std::string msg = "request failed with HTTP " + std::to_string(r.status);
  if (r.body.is_object() && r.body.contains("error"))
    msg = r.body["error"].value("message", msg);
  std::cerr << "kith: " << msg << "\n";
  return r.status == 404 ? 3 : 1;
}


std::optional<std::string> read_file(const std::string& path, std::string& why) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    why = "cannot open " + path;
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// A follow list for `kith follow --list`: one "<id> [host:port]" per
/// line, blank lines and #-comments skipped. Ids are checked by the node.
std::optional<storage::json> parse_follow_list(const std::string& text, std::string& why) {
  storage::json out = storage::json::array();
  std::istringstream in(text);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.erase(hash);
    std::istringstream words(line);
    std::string id, addr, extra;
    if (!(words >> id))
      continue;
    words >> addr;
    if (words >> extra) {
      why = "line " + std::to_string(n) + ": expected <id> [host:port], found more";
      return std::nullopt;
    }
    storage::json f{{"id", id}};
    if (!addr.empty())
      f["address"] = addr;
    out.push_back(std::move(f));
  }
  if (out.empty()) {
    why = "no ids in the list";
    return std::nullopt;
  }
  return out;
}

/// Writes `bytes` to `path` ("-" is stdout) through a temporary file, so a
/// failed export leaves no half-written bundle behind.
bool write_file(const std::string& path, const std::string& bytes, std::string& why) {
  if (path == "-") {
    std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::cout.flush();
    return static_cast<bool>(std::cout);
  }
  const auto tmp = path + ".part";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      why = "cannot write " + tmp;
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    why = "cannot rename " + tmp + " to " + path;
    return false;
  }
  return true;
}

int need_daemon() {
  std::cerr << "kith: no running node answers; start it with `kith run` (or pass -d for another "
               "data directory)\n";
  return 4;
}

} // namespace

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena and keeps freed
  // memory per arena: under a flood that is most of the daemon's RSS
  // (docs/security.md). Two arenas are plenty for its few threads.
  mallopt(M_ARENA_MAX, 2);
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
  get->add_option("predicate", predicate, "one property only (its siblings and context)");
  get->add_option("--topic", topic);

  auto* del = app.add_subcommand("del", "delete a document, or one of its properties");
  del->add_option("subject", subject)->required();
  del->add_option("predicate", predicate);
  del->add_option("--topic", topic);

  auto* post = app.add_subcommand("post", "post a status; #tags and @mentions are indexed");
  post->add_option("text", text)->required();
  std::string reply_to;
  post->add_option("--reply-to", reply_to, "the subject of the status this one answers");

  auto* feed = app.add_subcommand("feed", "the newest statuses of an author (default: you)");
  feed->add_option("--limit", limit)->check(CLI::Range(1, 10000));
  feed->add_option("--author", author, "an id");
  std::uint64_t before = 0;
  feed->add_option("--before", before, "only posts older than this time (ms)");
  std::string cursor;
  feed->add_option("--cursor", cursor,
                   "the next page: the \"cursor\" of the last post shown (never skips posts "
                   "that share a millisecond)");
  auto* thread = app.add_subcommand("thread", "a status and the replies this node holds");
  thread->add_option("subject", subject, "the status's subject")->required();
  auto* notifications = app.add_subcommand("notifications", "mentions of you and replies to you");
  notifications->add_option("--limit", limit)->check(CLI::Range(1, 10000));

  auto* tagc = app.add_subcommand("tag", "the newest statuses carrying #tag");
  tagc->add_option("tag", tag)->required();
  tagc->add_option("--limit", limit)->check(CLI::Range(1, 10000));

  auto* trending = app.add_subcommand(
      "trending", "the most used #tags of recent statuses, here and at your aggregators");
  std::uint32_t window_hours = 24;
  trending->add_option("--hours", window_hours, "the window, in hours (default 24)")
      ->check(CLI::Range(1, 24 * 365));
  trending->add_option("--limit", limit)->check(CLI::Range(1, 100));
  auto* query = app.add_subcommand(
      "query", "ask an aggregator (or this node's own store) one query; every item is verified");
  std::string query_kind, query_arg, query_aggregator;
  query->add_option("kind", query_kind, "mentions, thread, tag or trending")
      ->required()
      ->check(CLI::IsMember({"mentions", "thread", "tag", "trending"}));
  query->add_option("arg", query_arg, "an id (mentions; \"me\" for yours), a subject (thread), a tag");
  query->add_option("--aggregator", query_aggregator, "the aggregator's id (default: this node)");
  query->add_option("--limit", limit)->check(CLI::Range(1, 100));

  auto* run = app.add_subcommand("run", "run the node: sync with peers, serve the local API");
  std::string listen, api_addr, log_level;
  std::uint32_t ae_seconds = 0;
  run->add_option("--listen", listen, "peer address to listen on (default 127.0.0.1:7411; \"\" for none)");
  run->add_option("--api", api_addr, "local API address (default 127.0.0.1:7410; port 0: any)");
  run->add_option("--log-level", log_level, "debug, info, warn or error (default info)");
  run->add_option("--anti-entropy", ae_seconds, "seconds between anti-entropy rounds (default 30)")
      ->check(CLI::Range(1, 86400));
  std::vector<std::string> relay_opts, announce_opts;
  run->add_option("--relay", relay_opts,
                  "a relay to use, host:port[#relay id] (repeatable; replaces [node] relays)");
  run->add_option("--announce", announce_opts,
                  "an address peers can dial, put in this node's relay record (repeatable)");
  std::string web_dir;
  bool no_web = false;
  run->add_option("--web-dir", web_dir,
                  "serve the web UI from this directory (default [node] web_dir, else the one "
                  "shipped next to the program)");
  run->add_flag("--no-web", no_web, "serve no web UI, only the API");
  bool aggregate = false, no_directory = false;
  std::vector<std::string> aggregator_opts;
  run->add_flag("--aggregate", aggregate,
                "aggregator mode: follow everyone met in the relays' directory and answer "
                "queries (docs/app.md)");
  run->add_option("--aggregator", aggregator_opts,
                  "an aggregator to ask, <id> or <id>@host:port (repeatable; replaces "
                  "[node] aggregators)");
  run->add_flag("--no-directory", no_directory,
                "do not list this node in the relays' public directory");

  auto* status = app.add_subcommand("status", "the running node's identity, topics and peers");
  auto* peers = app.add_subcommand("peers", "connected and followed peers, with sync state");
  auto* relays = app.add_subcommand("relays", "the node's relay sessions (announced, lookups, circuits)");
  std::string who, address;
  std::string follow_list;
  auto* follow = app.add_subcommand("follow", "follow someone: replicate their feed");
  auto* follow_id = follow->add_option("id", who, "their id (kith id prints it)");
  auto* follow_address = follow->add_option("address", address, "host:port where their node listens");
  follow->add_option("--list", follow_list,
                     "follow every id of a file at once (one signed write): a line is "
                     "<id> [host:port], # starts a comment; - reads stdin")
      ->excludes(follow_id)
      ->excludes(follow_address);
  follow->callback([&] {
    if (who.empty() && follow_list.empty())
      throw CLI::ValidationError("follow", "give an id, or --list FILE");
  });
  auto* unfollow = app.add_subcommand("unfollow", "stop following someone");
  unfollow->add_option("id", who)->required();

  auto* topics = app.add_subcommand("topics", "the topics this node holds, with sync state");
  auto* topicc = app.add_subcommand("topic", "create, join or show a shared topic");
  topicc->require_subcommand(1);
  std::string topic_name, descriptor_text;
  std::vector<std::string> writers;
  auto* topic_create = topicc->add_subcommand(
      "create", "create a shared topic; prints the descriptor to give to its writers");
  topic_create->add_option("name", topic_name, "a name for people")->required();
  topic_create->add_option("--writer", writers, "an id allowed to write (repeatable)");
  auto* topic_join = topicc->add_subcommand("join", "hold a shared topic (from its descriptor)");
  topic_join->add_option("descriptor", descriptor_text,
                         "the descriptor JSON from `topic create`, or @file")->required();
  auto* topic_show = topicc->add_subcommand("show", "print a held topic's descriptor");
  topic_show->add_option("topic", topic, "topic id, or me for your feed")->required();

  auto* bundle = app.add_subcommand("bundle", "move a topic's signed data as a file (offline transfer)");
  bundle->require_subcommand(1);
  std::string bundle_file;
  auto* bundle_export = bundle->add_subcommand("export", "write a topic's signed data to a file");
  bundle_export->add_option("topic", topic, "topic id, or me for your feed")->required();
  bundle_export->add_option("file", bundle_file, "output file (- for stdout)")->required();
  auto* bundle_import = bundle->add_subcommand("import", "verify and merge a bundle file");
  bundle_import->add_option("file", bundle_file, "bundle file (- for stdin)")->required();

  auto* sync = app.add_subcommand("sync", "sync with a node at the other end of a pipe");
  bool stdio = false;
  std::uint32_t idle_exit = 0;
  sync->add_flag("--stdio", stdio,
                 "speak the peer protocol on stdin/stdout (e.g. through ssh); the running node "
                 "does the sync")->required();
  sync->add_option("--idle-exit", idle_exit, "stop after this many seconds without traffic");

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

  if (run->parsed()) {
    auto cfg = node::load_config(dir);
    if (!cfg)
      return fail(cfg.err());
    if (run->count("--listen"))
      cfg->listen = listen;
    if (!api_addr.empty())
      cfg->api = api_addr;
    if (!log_level.empty())
      cfg->log_level = log_level;
    if (ae_seconds != 0)
      cfg->anti_entropy_s = ae_seconds;
    if (!relay_opts.empty())
      cfg->relays = relay_opts;
    if (!announce_opts.empty())
      cfg->announce = announce_opts;
    if (run->count("--web-dir"))
      cfg->web_dir = web_dir;
    if (no_web)
      cfg->web_dir = std::string{};
    if (aggregate)
      cfg->aggregate = true;
    if (no_directory)
      cfg->directory = false;
    if (!aggregator_opts.empty()) {
      for (const auto& a : aggregator_opts) {
        std::string why;
        if (!node::parse_aggregator(a, &why))
          return fail({storage::errc::invalid, "--aggregator " + a + ": " + why});
      }
      cfg->aggregators = aggregator_opts;
    }
    return node::run_daemon(dir, *cfg);
  }
  if (status->parsed() || peers->parsed() || relays->parsed()) {
    const std::string what = status->parsed() ? "status" : peers->parsed() ? "peers" : "relays";
    auto r = call_daemon(dir, "GET", "/v1/" + what);
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    print(status->parsed() ? r->body : r->body[what]);
    return 0;
  }
  if (follow->parsed() && !follow_list.empty()) {
    std::string why;
    std::optional<std::string> text;
    if (follow_list == "-") {
      std::ostringstream ss;
      ss << std::cin.rdbuf();
      text = ss.str();
    } else {
      text = read_file(follow_list, why);
    }
    if (!text) {
      std::cerr << "kith: " << why << "\n";
      return 2;
    }
    auto list = parse_follow_list(*text, why);
    if (!list) {
      std::cerr << "kith: " << follow_list << ": " << why << "\n";
      return 2;
    }
    auto r = call_daemon(dir, "POST", "/v1/follows", storage::json{{"follows", *list}});
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    std::cerr << "kith: following the " << list->size() << " ids of " << follow_list
              << " (one signed write)\n";
    return 0;
  }
  if (follow->parsed() || unfollow->parsed()) {
    storage::json body{{"id", who}};
    if (!address.empty())
      body["address"] = address;
    auto r = call_daemon(dir, "POST", follow->parsed() ? "/v1/follow" : "/v1/unfollow", body);
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    std::cerr << "kith: " << (follow->parsed() ? "following " : "no longer following ") << who << "\n";
    return 0;
  }

  if (sync->parsed()) {
    node::pipe_options o;
    o.idle_exit = std::chrono::seconds(idle_exit);
    return node::run_pipe_sync(dir, o);
  }
  if (topics->parsed() || topicc->parsed()) {
    std::optional<daemon_reply> r;
    if (topics->parsed()) {
      r = call_daemon(dir, "GET", "/v1/topics");
    } else if (topic_create->parsed()) {
      r = call_daemon(dir, "POST", "/v1/topics",
                      storage::json{{"name", topic_name}, {"writers", writers}});
    } else if (topic_join->parsed()) {
      std::string why, text = descriptor_text;
      if (!text.empty() && text[0] == '@') {
        auto t = read_file(text.substr(1), why);
        if (!t)
          return fail({storage::errc::not_found, why});
        text = *t;
      }
      auto d = storage::json::parse(text, nullptr, false);
      if (d.is_discarded() || !d.is_object())
        return fail({storage::errc::invalid, "the descriptor is not a JSON object"});
      if (d.contains("descriptor"))
        d = d["descriptor"]; // the whole output of `topic create` works too
      r = call_daemon(dir, "POST", "/v1/topics/join", storage::json{{"descriptor", d}});
    } else {
      r = call_daemon(dir, "GET", "/v1/topics/" + node::url_encode(topic));
    }
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    print(topics->parsed() ? r->body["topics"] : r->body);
    return 0;
  }
  if (bundle_export->parsed() || bundle_import->parsed()) {
    std::string why;
    if (bundle_export->parsed()) {
      auto r = call_daemon_raw(dir, "GET", "/v1/bundle?topic=" + node::url_encode(topic),
                               std::nullopt, "application/json", std::chrono::minutes(10));
      std::string bytes;
      if (r) {
        if (r->status != 200) {
          daemon_reply d{r->status, storage::json::parse(r->body, nullptr, false)};
          return fail_reply(d);
        }
        bytes = std::move(r->body);
      } else {
        auto n = open_node(dir);
        if (!n)
          return fail(n.err());
        auto b = storage::export_bundle(*n->store, n->id,
                                        topic == "me" ? n->store->feed_topic_id() : topic);
        if (!b)
          return fail(b.err());
        bytes = std::move(*b);
      }
      if (!write_file(bundle_file, bytes, why))
        return fail({storage::errc::io, why});
      std::cerr << "kith: wrote a bundle of " << bytes.size() << " bytes\n";
      return 0;
    }
    std::optional<std::string> bytes;
    if (bundle_file == "-") {
      bytes = std::string(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      bytes = read_file(bundle_file, why);
      if (!bytes)
        return fail({storage::errc::not_found, why});
    }
    storage::json out;
    if (auto r = call_daemon_raw(dir, "POST", "/v1/bundle", *bytes, "application/octet-stream",
                                 std::chrono::minutes(10))) {
      daemon_reply d{r->status, storage::json::parse(r->body, nullptr, false)};
      if (r->status != 200)
        return fail_reply(d);
      out = d.body;
    } else {
      auto b = protocol::read_bundle(*bytes, {}, &why);
      if (!b)
        return fail({storage::errc::invalid, "bundle refused: " + why});
      auto n = open_node(dir);
      if (!n)
        return fail(n.err());
      auto s = storage::import_bundle(*n->store, *b);
      if (!s)
        return fail(s.err());
      out = storage::json{{"topic", s->topic},
                          {"exporter", protocol::to_text(b->exporter.author)},
                          {"pages", s->pages},
                          {"entries", s->entries},
                          {"keys_changed", s->keys_changed},
                          {"new_writes", s->new_dots}};
    }
    print(out);
    return 0;
  }

  if (trending->parsed() || query->parsed()) {
    std::string target;
    if (trending->parsed()) {
      target = "/v1/trending?window_ms=" +
               std::to_string(std::uint64_t{window_hours} * 3600 * 1000) +
               "&limit=" + std::to_string(limit);
    } else {
      target = "/v1/query?kind=" + node::url_encode(query_kind) + "&limit=" + std::to_string(limit);
      if (!query_arg.empty())
        target += "&arg=" + node::url_encode(query_arg);
      if (!query_aggregator.empty())
        target += "&aggregator=" + node::url_encode(query_aggregator);
    }
    auto r = call_daemon(dir, "GET", target);
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    print(r->body);
    return 0;
  }

  // Document commands: through the daemon when one runs.
  if (thread->parsed() || notifications->parsed()) {
    auto r = thread->parsed()
                 ? call_daemon(dir, "GET", "/v1/thread/" + node::url_encode(subject))
                 : call_daemon(dir, "GET", "/v1/notifications?limit=" + std::to_string(limit));
    if (!r)
      return need_daemon();
    if (r->status != 200)
      return fail_reply(*r);
    print(thread->parsed() ? r->body : r->body["posts"]);
    return 0;
  }
  const bool doc_cmd = put->parsed() || get->parsed() || del->parsed() || post->parsed() ||
                       feed->parsed() || tagc->parsed();
  if (doc_cmd) {
    std::optional<daemon_reply> r;
    if (put->parsed()) {
      auto obj = storage::json::parse(text, nullptr, false);
      if (obj.is_discarded())
        return fail({storage::errc::invalid, "the document is not valid JSON"});
      storage::json body{{"doc", obj}};
      if (!topic.empty())
        body["topic"] = topic;
      if (!ctx_text.empty()) {
        auto ctx = storage::json::parse(ctx_text, nullptr, false);
        if (ctx.is_discarded())
          return fail({storage::errc::invalid, "--context is not valid JSON"});
        body["contexts"] = ctx;
      }
      r = call_daemon(dir, "PUT", "/v1/docs/" + node::url_encode(subject), body);
      if (r && r->status == 200) {
        auto k = r->body["dots"].size();
        std::cerr << "kith: wrote " << k << " propert" << (k == 1 ? "y" : "ies") << "\n";
        return 0;
      }
    } else if (get->parsed()) {
      std::string q;
      if (!predicate.empty())
        q += "predicate=" + node::url_encode(predicate);
      if (!topic.empty())
        q += (q.empty() ? "" : "&") + std::string("topic=") + node::url_encode(topic);
      r = call_daemon(dir, "GET", "/v1/docs/" + node::url_encode(subject) + (q.empty() ? "" : "?" + q));
      if (r && r->status == 200) {
        print(r->body);
        return 0;
      }
    } else if (del->parsed()) {
      std::string q;
      if (!predicate.empty())
        q += "predicate=" + node::url_encode(predicate);
      if (!topic.empty())
        q += (q.empty() ? "" : "&") + std::string("topic=") + node::url_encode(topic);
      r = call_daemon(dir, "DELETE", "/v1/docs/" + node::url_encode(subject) + (q.empty() ? "" : "?" + q));
      if (r && r->status == 200) {
        auto k = r->body.value("deleted", 0);
        std::cerr << "kith: deleted " << k << " key(s)\n";
        return k == 0 ? 3 : 0;
      }
    } else if (post->parsed()) {
      storage::json body{{"text", text}};
      if (!reply_to.empty())
        body["reply_to"] = reply_to;
      r = call_daemon(dir, "POST", "/v1/posts", body);
      if (r && r->status == 200) {
        std::cout << r->body["subject"].get<std::string>() << "\n";
        return 0;
      }
    } else if (feed->parsed()) {
      std::string q = "/v1/feed?limit=" + std::to_string(limit);
      if (!author.empty())
        q += "&author=" + node::url_encode(author);
      if (before != 0)
        q += "&before=" + std::to_string(before);
      if (!cursor.empty())
        q += "&cursor=" + node::url_encode(cursor);
      r = call_daemon(dir, "GET", q);
      if (r && r->status == 200) {
        print(r->body["posts"]);
        return 0;
      }
    } else {
      r = call_daemon(dir, "GET", "/v1/tags/" + node::url_encode(tag) + "?limit=" + std::to_string(limit));
      if (r && r->status == 200) {
        print(r->body["posts"]);
        return 0;
      }
    }
    if (r)
      return fail_reply(*r);
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
    if (!predicate.empty())
      return fail({storage::errc::invalid,
                   "reading one property needs the running daemon (kith run); without it, "
                   "`kith get <subject>` shows every property"});
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
    auto r = docs.post(text, now_ms(), reply_to);
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
    auto r = docs.feed(who, limit, before, cursor);
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
