#include "kith/node/api_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kith::node {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// ---------------------------------------------------------------------
// Routing: target, method and body in, an operation (or an error) out.
// No I/O here; the session below does the talking.

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Decodes %XX escapes (and '+' as a space in query strings). Fails on a
/// malformed escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return std::nullopt;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

/// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF):
/// decoded path and query text becomes JSON strings, which must be UTF-8.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size())
      return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

/// Deepest array/object nesting of a JSON text, scanned without parsing,
/// so a body of a million '[' is refused before the parser allocates for it.
std::size_t json_depth(std::string_view s) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

struct route_result {
  enum class kind { call, events, fail, file };
  kind what = kind::fail;
  std::string op;
  /// kind::file: the resolved file (inside static_dir) and its type.
  std::string file_path;
  std::string content_type;
  json params = json::object();
  /// bundle_import: the raw request body goes to the backend.
  bool pass_body = false;
  api_reply error;
  /// For 405: the methods the path accepts.
  std::string allow;
};

route_result fail(int status, std::string code, std::string message) {
  route_result r;
  r.error = api_error(status, std::move(code), std::move(message));
  return r;
}

route_result bad_request(std::string message) {
  return fail(400, "bad_request", std::move(message));
}

route_result not_allowed(http::verb method, std::string allow) {
  auto r = fail(405, "method_not_allowed",
                std::string(http::to_string(method)) + " is not allowed here; use " + allow);
  r.allow = std::move(allow);
  return r;
}

route_result call(std::string op, json params = json::object()) {
  route_result r;
  r.what = route_result::kind::call;
  r.op = std::move(op);
  r.params = std::move(params);
  return r;
}

/// Parses the request body as a JSON object, within the depth limit.
std::optional<route_result> parse_object(const std::string& body, std::size_t max_depth,
                                         json& out) {
  if (body.empty())
    return fail(400, "bad_json", "request body is empty; send a JSON object");
  if (json_depth(body) > max_depth)
    return fail(400, "bad_json",
                "request body nests deeper than " + std::to_string(max_depth) + " levels");
  try {
    out = json::parse(body);
  } catch (const json::exception& e) {
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    if (const auto p = what.find("] "); !what.empty() && what.front() == '[' && p != std::string::npos)
      what.erase(0, p + 2);
    return fail(400, "bad_json", "request body is not valid JSON: " + what);
  }
  if (!out.is_object())
    return fail(400, "bad_json", "request body must be a JSON object");
  return std::nullopt;
}

enum class presence { required, optional };

/// Copies body field `name` into params if it has the JSON type `type`.
std::optional<route_result> take_field(const json& body, const char* name, json::value_t type,
                                       presence p, json& params) {
  const char* type_name = type == json::value_t::object ? "an object" : "a string";
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (p == presence::required)
      return bad_request(std::string("field '") + name + "' is required and must be " +
                         type_name);
    return std::nullopt;
  }
  if (it->type() != type)
    return bad_request(std::string("field '") + name + "' must be " + type_name);
  params[name] = *it;
  return std::nullopt;
}

struct field_spec {
  const char* name;
  json::value_t type;
  presence p;
};

route_result call_with_body(std::string op, const std::string& body, std::size_t max_depth,
                            std::initializer_list<field_spec> fields, json params = json::object()) {
  json in;
  if (auto err = parse_object(body, max_depth, in))
    return std::move(*err);
  for (const auto& f : fields)
    if (auto err = take_field(in, f.name, f.type, f.p, params))
      return std::move(*err);
  return call(std::move(op), std::move(params));
}

/// The query string as name -> decoded value (last one wins), or an error.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty())
      continue;
    const auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                                true);
    if (!name || !value || !valid_utf8(*name) || !valid_utf8(*value))
      return std::nullopt;
    out[std::move(*name)] = std::move(*value);
  }
  return out;
}

/// Copies the named query parameters into params: strings, except
/// `limit`, a non-negative integer. Empty values count as absent.
std::optional<route_result> take_query(std::string_view query,
                                       std::initializer_list<const char*> names,
                                       json& params) {
  const auto q = parse_query(query);
  if (!q)
    return bad_request("malformed query string (bad percent-encoding or not UTF-8)");
  for (const char* name : names) {
    const auto it = q->find(name);
    if (it == q->end() || it->second.empty())
      continue;
    if (std::string_view(name) == "limit") {
      const auto& v = it->second;
      if (v.size() > 9 || !std::all_of(v.begin(), v.end(),
                                       [](unsigned char c) { return std::isdigit(c) != 0; }))
        return bad_request("query parameter 'limit' must be a non-negative integer below 10^9");
      params["limit"] = std::stoll(v);
    } else if (const std::string_view n = name;
               n == "before" || n == "window_ms" || n == "since_ms" || n == "until_ms") {
      const auto& v = it->second;
      if (v.size() > 19 || !std::all_of(v.begin(), v.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0; }))
        return bad_request("query parameter '" + std::string(n) +
                           "' must be a time in ms (digits only)");
      params[name] = std::stoull(v);
    } else {
      params[name] = it->second;
    }
  }
  return std::nullopt;
}

/// The decoded remainder of a path after `prefix`, or an error.
std::optional<route_result> path_rest(std::string_view path, std::string_view prefix,
                                      const char* what, std::string& out) {
  auto decoded = percent_decode(path.substr(prefix.size()), false);
  if (!decoded || !valid_utf8(*decoded))
    return bad_request(std::string("malformed ") + what +
                       " in the path (bad percent-encoding or not UTF-8)");
  if (decoded->empty())
    return bad_request(std::string("missing ") + what + ": use " + std::string(prefix) + "<" +
                       what + ">");
  out = std::move(*decoded);
  return std::nullopt;
}

/// The Content-Type of a static file, by extension; empty for a type the
/// web UI does not use, which is not served (no guessing, no sniffing).
std::string static_content_type(const std::filesystem::path& file) {
  const std::string ext = lower(file.extension().string());
  if (ext == ".html")
    return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs")
    return "text/javascript; charset=utf-8";
  if (ext == ".css")
    return "text/css; charset=utf-8";
  if (ext == ".svg")
    return "image/svg+xml";
  if (ext == ".png")
    return "image/png";
  if (ext == ".json")
    return "application/json";
  return {};
}

/// True when `p` is `root` or lies under it; both canonical.
bool path_within(const std::filesystem::path& root, const std::filesystem::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q)
    if (q == p.end() || *q != *r)
      return false;
  return true;
}

/// Non-API paths: the web UI's files from static_dir (docs/web.md). The
/// path is percent-decoded; "/" (or any path ending in '/') names
/// index.html there. Dot segments and hidden names are refused outright,
/// and the canonical result (symlinks resolved) must still lie inside the
/// canonical static_dir, so neither '..' nor a symlink leads out of it.
/// Directories are never listed. The method (GET/HEAD only) is checked
/// by the session when it sends the file.
route_result serve_static(const api_server_options& o, std::string_view path) {
  namespace fs = std::filesystem;
  auto missing = [&] { return fail(404, "not_found", "no such file: " + std::string(path)); };
  if (!o.static_dir || o.static_dir->empty())
    return fail(404, "not_found", "no such route: " + std::string(path));
  auto decoded = percent_decode(path, false);
  if (!decoded || !valid_utf8(*decoded) || decoded->find('\0') != std::string::npos)
    return missing();
  fs::path rel;
  std::string_view rest = *decoded;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const auto seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (seg.empty())
      continue;
    if (seg.front() == '.') // ".", "..", and hidden files such as .gitignore
      return missing();
    rel /= std::string(seg);
  }
  if (decoded->back() == '/')
    rel /= "index.html";
  std::error_code ec;
  const fs::path root = fs::canonical(*o.static_dir, ec);
  if (ec)
    return missing();
  const fs::path file = fs::canonical(root / rel, ec);
  if (ec || !path_within(root, file) || !fs::is_regular_file(file, ec))
    return missing();
  route_result r;
  r.content_type = static_content_type(file);
  if (r.content_type.empty())
    return missing();
  r.what = route_result::kind::file;
  r.file_path = file.string();
  return r;
}

/// A GET route: operation `op` with the query parameters `names` and,
/// when `what` is set, the decoded rest of the path after `prefix` as
/// parameter `what`.
route_result get_route(http::verb m, std::string_view path, std::string_view query,
                       std::initializer_list<const char*> names, const std::string& op,
                       std::string_view prefix = {}, const char* what = nullptr) {
  if (m != http::verb::get)
    return not_allowed(m, "GET");
  json params = json::object();
  if (what) {
    std::string rest;
    if (auto err = path_rest(path, prefix, what, rest))
      return std::move(*err);
    params[what] = std::move(rest);
  }
  if (auto err = take_query(query, names, params))
    return std::move(*err);
  return call(op, std::move(params));
}

/// Whether `path` starts with `prefix`.
bool under(std::string_view path, std::string_view prefix) {
  return path.substr(0, prefix.size()) == prefix;
}

route_result route(http::verb m, std::string_view target, const std::string& body,
                   const api_server_options& o) {
  if (target.empty() || target.front() != '/')
    return bad_request("the request target must be a path starting with '/'");
  const auto qpos = target.find('?');
  const auto path = target.substr(0, qpos);
  const auto query = qpos == std::string_view::npos ? std::string_view{} : target.substr(qpos + 1);
  const std::size_t depth = o.max_json_depth;
  using vt = json::value_t;
  constexpr auto req = presence::required;
  constexpr auto opt = presence::optional;

  if (path == "/v1/topics" && m == http::verb::post)
    return call_with_body("topic_create", body, depth,
                          {{"name", vt::string, req}, {"writers", vt::array, opt}});
  if (path == "/v1/topics/join") {
    if (m != http::verb::post)
      return not_allowed(m, "POST");
    return call_with_body("topic_join", body, depth, {{"descriptor", vt::object, req}});
  }
  if (path == "/v1/status" || path == "/v1/peers" || path == "/v1/topics" ||
      path == "/v1/relays") {
    if (m != http::verb::get)
      return not_allowed(m, path == "/v1/topics" ? "GET, POST" : "GET");
    return call(std::string(path.substr(4)));
  }
  if (constexpr std::string_view p = "/v1/topics/"; under(path, p))
    return get_route(m, path, query, {}, "topic_get", p, "topic");
  if (path == "/v1/follow" || path == "/v1/unfollow") {
    if (m != http::verb::post)
      return not_allowed(m, "POST");
    if (path == "/v1/follow")
      return call_with_body("follow", body, depth, {{"id", vt::string, req}, {"address", vt::string, opt}});
    return call_with_body("unfollow", body, depth, {{"id", vt::string, req}});
  }
  if (path == "/v1/follows") { // a list of follows, written as one batch
    if (m != http::verb::post)
      return not_allowed(m, "POST");
    return call_with_body("follow", body, depth, {{"follows", vt::array, req}});
  }
  if (path == "/v1/connect") {
    if (m != http::verb::post)
      return not_allowed(m, "POST");
    return call_with_body("connect", body, depth,
                          {{"address", vt::string, req}, {"id", vt::string, opt}});
  }
  if (path == "/v1/posts") {
    if (m != http::verb::post)
      return not_allowed(m, "POST");
    return call_with_body("post", body, depth,
                          {{"text", vt::string, req}, {"reply_to", vt::string, opt}});
  }
  if (path == "/v1/feed")
    return get_route(m, path, query, {"author", "limit", "before", "cursor"}, "feed");
  if (path == "/v1/notifications")
    return get_route(m, path, query, {"limit"}, "notifications");
  if (constexpr std::string_view p = "/v1/thread/"; under(path, p))
    return get_route(m, path, query, {"limit"}, "thread", p, "subject");
  if (path == "/v1/bundle") {
    if (m == http::verb::get) {
      json params = json::object();
      if (auto err = take_query(query, {"topic"}, params))
        return std::move(*err);
      if (!params.contains("topic"))
        return bad_request("query parameter 'topic' is required: GET /v1/bundle?topic=<topic>");
      return call("bundle_export", std::move(params));
    }
    if (m == http::verb::post) {
      auto r = call("bundle_import");
      r.pass_body = true;
      return r;
    }
    return not_allowed(m, "GET, POST");
  }
  if (path == "/v1/events") {
    if (m != http::verb::get)
      return not_allowed(m, "GET");
    route_result r;
    r.what = route_result::kind::events;
    return r;
  }
  constexpr std::string_view docs = "/v1/docs/";
  if (path.substr(0, docs.size()) == docs) {
    if (m != http::verb::get && m != http::verb::put && m != http::verb::delete_)
      return not_allowed(m, "GET, PUT, DELETE");
    json params = json::object();
    std::string subject;
    if (auto err = path_rest(path, docs, "subject", subject))
      return std::move(*err);
    params["subject"] = std::move(subject);
    if (m == http::verb::put)
      return call_with_body("put", body, depth,
                            {{"doc", vt::object, req},
                             {"topic", vt::string, opt},
                             {"contexts", vt::object, opt}},
                            std::move(params));
    const bool get = m == http::verb::get;
    if (auto err = take_query(query, {"predicate", "topic"}, params))
      return std::move(*err);
    return call(get ? "get" : "del", std::move(params));
  }
  if (constexpr std::string_view p = "/v1/tags/"; under(path, p))
    return get_route(m, path, query, {"limit"}, "tag", p, "tag");
  if (path == "/v1/trending")
    return get_route(m, path, query, {"window_ms", "limit"}, "trending");
  if (path == "/v1/query")
    return get_route(m, path, query,
                     {"kind", "arg", "aggregator", "limit", "since_ms", "until_ms"}, "query");
  if (path == "/v1" || path.substr(0, 4) == "/v1/")
    return fail(404, "not_found", "no such route: " + std::string(path) + " (see docs/api.md)");
  return serve_static(o, path);
}

/// One server-sent event: "event: <type>\ndata: <json>\n\n".
std::string format_event(const json& ev) {
  std::string type = "message";
  if (ev.is_object()) {
    if (const auto it = ev.find("type"); it != ev.end() && it->is_string() && !it->empty())
      type = it->get<std::string>();
  }
  // A newline in the type would end the field early and let the payload
  // forge events.
  type.erase(std::remove_if(type.begin(), type.end(), [](char c) { return c == '\n' || c == '\r'; }),
             type.end());
  // Compact dump escapes control characters inside strings, so the data is
  // one line.
  return "event: " + type + "\ndata: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n\n";
}

/// Events waiting for one stream. Filled by backend threads, drained on
/// the connection's strand; bounded so a slow reader costs at most the
/// bound, then its connection.
class event_outbox {
public:
  event_outbox(std::size_t max_events, std::size_t max_bytes)
      : max_events_(max_events), max_bytes_(max_bytes) {}

  /// Queues a frame. True when the caller must post a drain: none is on
  /// its way yet, or the queue just overflowed (a write may be stuck, and
  /// the strand must hear of it to disconnect).
  [[nodiscard]] bool push(std::string frame) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || overflow_)
      return false;
    if (!queue_.empty() &&
        (queue_.size() + 1 > max_events_ || bytes_ + frame.size() > max_bytes_)) {
      overflow_ = true;
      queue_.clear();
      bytes_ = 0;
      return true;
    } else {
      bytes_ += frame.size();
      queue_.push_back(std::move(frame));
    }
    if (drain_posted_)
      return false;
    drain_posted_ = true;
    return true;
  }

  enum class taken { data, empty, overflow };

  /// Moves every queued frame into `out`.
  taken take(std::string& out) {
    std::lock_guard<std::mutex> lock(mu_);
    drain_posted_ = false;
    if (overflow_)
      return taken::overflow;
    if (queue_.empty())
      return taken::empty;
    out.clear();
    out.reserve(bytes_);
    for (auto& f : queue_)
      out += f;
    queue_.clear();
    bytes_ = 0;
    return taken::data;
  }

  [[nodiscard]] bool overflowed() {
    std::lock_guard<std::mutex> lock(mu_);
    return overflow_;
  }

  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    queue_.clear();
    bytes_ = 0;
  }

private:
  std::mutex mu_;
  std::deque<std::string> queue_;
  std::size_t bytes_ = 0;
  const std::size_t max_events_;
  const std::size_t max_bytes_;
  bool overflow_ = false;
  bool closed_ = false;
  bool drain_posted_ = false;
};

class http_session;

} // namespace

// ---------------------------------------------------------------------
// The listener and the registry of live connections.

namespace detail {

class api_server_state : public std::enable_shared_from_this<api_server_state> {
public:
  api_server_state(net::io_context& ioc, api_backend& backend, api_server_options opts)
      : ioc_(ioc), backend_(backend), opts_(std::move(opts)), acceptor_(net::make_strand(ioc)),
        retry_timer_(acceptor_.get_executor()) {}

  api_start_result start();
  /// On the acceptor's strand.
  void shutdown();

  [[nodiscard]] api_backend& backend() { return backend_; }
  [[nodiscard]] const api_server_options& opts() const { return opts_; }
  [[nodiscard]] std::uint16_t port() const { return port_.load(); }
  [[nodiscard]] net::any_io_executor executor() { return acceptor_.get_executor(); }

  /// Host header values that name this server.
  [[nodiscard]] bool host_allowed(std::string_view host) const;
  [[nodiscard]] bool origin_allowed(std::string_view origin) const;

  void unregister(std::uint64_t id, bool counted);

private:
  void accept();
  void on_accept(const error_code& ec, tcp::socket socket);

  net::io_context& ioc_;
  api_backend& backend_;
  const api_server_options opts_;
  tcp::acceptor acceptor_;       // on its own strand
  net::steady_timer retry_timer_; // same strand
  std::atomic<std::uint16_t> port_{0};
  std::vector<std::string> hosts_; // written by start(), then read-only
  bool started_ = false;
  bool stopping_ = false; // acceptor strand only

  std::mutex mu_;
  std::unordered_map<std::uint64_t, std::weak_ptr<http_session>> sessions_;
  std::uint64_t next_id_ = 1;
  std::size_t active_ = 0; // sessions counted against max_connections
};

} // namespace detail

namespace {

using detail::api_server_state;

// ---------------------------------------------------------------------
// One connection: requests and responses, or one event stream.

class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(std::shared_ptr<api_server_state> server, tcp::socket socket, std::uint64_t id,
               bool counted)
      : server_(std::move(server)), stream_(std::move(socket)),
        keepalive_timer_(stream_.get_executor()), id_(id), counted_(counted) {}

  ~http_session() {
    if (outbox_)
      outbox_->close(); // a listener still registered becomes a no-op
    if (!closed_)
      server_->unregister(id_, counted_);
  }

  http_session(const http_session&) = delete;
  http_session& operator=(const http_session&) = delete;

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->counted_)
        self->read_header();
      else
        self->send(api_error(503, "too_many_connections",
                             "the API has too many open connections; retry later"),
                   true);
    });
  }

  /// From any thread.
  void shutdown() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  void on_backend_reply(api_reply r) {
    if (closed_)
      return;
    send(std::move(r), false);
  }

private:
  const api_server_options& opts() const { return server_->opts(); }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(opts().max_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<std::uint64_t>(opts().max_body_bytes));
    stream_.expires_after(opts().idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  /// Maps a read error to a reply (or none: the peer is gone).
  void on_read_error(const error_code& ec) {
    if (ec == http::error::body_limit) {
      send(api_error(413, "body_too_large",
                     "request body is larger than the limit of " +
                         std::to_string(opts().max_body_bytes) + " bytes"),
           true);
    } else if (ec == http::error::header_limit) {
      send(api_error(431, "header_too_large",
                     "request header is larger than " + std::to_string(opts().max_header_bytes) +
                         " bytes"),
           true);
    } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      send(api_error(400, "bad_http", "malformed HTTP request: " + ec.message()), true);
    } else {
      close(); // end of stream, timeout, reset, aborted
    }
  }

  void on_header(const error_code& ec) {
    if (closed_)
      return;
    if (ec)
      return on_read_error(ec);
    version_ = parser_->get().version();
    keep_alive_ = parser_->get().keep_alive();
    const auto& h = parser_->get();

    // Local-only rules, checked before reading a body.
    const auto host = h.find(http::field::host);
    if (host == h.end() || !server_->host_allowed(host->value().to_string()))
      return send(api_error(403, "forbidden_host",
                            "the Host header must be 127.0.0.1:" + std::to_string(server_->port()) +
                                ", localhost:" + std::to_string(server_->port()) + " or [::1]:" +
                                std::to_string(server_->port()) +
                                " (the API refuses other names to block DNS rebinding)"),
                  true);
    if (const auto origin = h.find(http::field::origin);
        origin != h.end() && !server_->origin_allowed(origin->value().to_string()))
      return send(api_error(403, "forbidden_origin",
                            "cross-origin requests are refused; only pages served from http://127.0.0.1:" +
                                std::to_string(server_->port()) + " may call the API"),
                  true);

    if (parser_->is_done())
      return on_request();
    // Answer "Expect: 100-continue" (curl sends it for bodies over 1 KiB),
    // so uploads do not stall a second waiting for it.
    if (beast::iequals(h[http::field::expect], "100-continue")) {
      static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(opts().write_timeout);
      net::async_write(stream_, net::buffer(cont),
                       [self = shared_from_this()](error_code ec, std::size_t) {
                         if (self->closed_)
                           return;
                         if (ec)
                           return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(opts().idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) {
                       if (self->closed_)
                         return;
                       if (ec)
                         return self->on_read_error(ec);
                       self->on_request();
                     });
  }

  void on_request() {
    auto req = parser_->release();
    parser_.reset();
    auto r = route(req.method(), std::string_view(req.target().data(), req.target().size()),
                   req.body(), opts());
    switch (r.what) {
    case route_result::kind::fail:
      return send(std::move(r.error), false, r.allow);
    case route_result::kind::events:
      return start_events();
    case route_result::kind::call:
      return call_backend(std::move(r.op), std::move(r.params),
                          r.pass_body ? std::move(req.body()) : std::string{});
    case route_result::kind::file:
      return send_file(req.method(), r.file_path, r.content_type);
    }
  }

  // --- backend calls ---------------------------------------------------

  /// The `done` handed to the backend: delivers once, back on the strand;
  /// answers 500 if the backend drops it unanswered.
  class pending_reply {
  public:
    explicit pending_reply(std::shared_ptr<http_session> s) : session_(std::move(s)) {}
    ~pending_reply() {
      if (!delivered_.load())
        deliver(api_error(500, "internal", "the node dropped the request without an answer"));
    }
    pending_reply(const pending_reply&) = delete;
    pending_reply& operator=(const pending_reply&) = delete;

    void deliver(api_reply r) {
      if (delivered_.exchange(true))
        return;
      auto s = session_;
      net::post(s->stream_.get_executor(),
                [s, r = std::move(r)]() mutable { s->on_backend_reply(std::move(r)); });
    }

  private:
    std::shared_ptr<http_session> session_;
    std::atomic<bool> delivered_{false};
  };

  void call_backend(std::string op, json params, std::string body) {
    auto pending = std::make_shared<pending_reply>(shared_from_this());
    try {
      server_->backend().call(op, params, std::move(body),
                              [pending](api_reply r) { pending->deliver(std::move(r)); });
    } catch (const std::exception& e) {
      pending->deliver(api_error(500, "internal", std::string("the node failed: ") + e.what()));
    } catch (...) {
      pending->deliver(api_error(500, "internal", "the node failed"));
    }
  }

  // --- responses -------------------------------------------------------

  /// A web UI file found by serve_static (GET or HEAD only). Its headers
  /// keep the page to this origin: the CSP allows scripts, styles, fetches
  /// and images from 'self' only (plus data: images), and no framing.
  void send_file(http::verb method, const std::string& path, const std::string& content_type) {
    // The UI's files are a few KiB; a bound keeps a stray large file from
    // being read into memory whole.
    constexpr std::uintmax_t max_file_bytes = std::uintmax_t{8} << 20;
    if (method != http::verb::get && method != http::verb::head)
      return send(api_error(405, "method_not_allowed",
                            std::string(http::to_string(method)) +
                                " is not allowed here; use GET, HEAD"),
                  false, "GET, HEAD");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    std::string body;
    if (!ec && size <= max_file_bytes) {
      std::ifstream f(path, std::ios::binary);
      body.resize(static_cast<std::size_t>(size));
      if (!f.read(body.data(), static_cast<std::streamsize>(size)))
        ec = std::make_error_code(std::errc::io_error);
    }
    if (ec || size > max_file_bytes)
      return send(api_error(404, "not_found", "cannot read the file"), false);
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version_ == 10 ? 10 : 11);
    res->result(http::status::ok);
    res->set(http::field::server, "kith");
    res->set(http::field::content_type, content_type);
    res->set(http::field::cache_control, "no-cache");
    res->set("X-Content-Type-Options", "nosniff");
    res->set("X-Frame-Options", "DENY");
    res->set("Referrer-Policy", "no-referrer");
    res->set("Content-Security-Policy",
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'");
    res->keep_alive(keep_alive_);
    if (method == http::verb::head) {
      res->content_length(body.size()); // the GET's length, no body
    } else {
      res->body() = std::move(body);
      res->prepare_payload();
    }
    const bool keep = keep_alive_;
    stream_.expires_after(opts().write_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep](error_code ec, std::size_t) {
      if (self->closed_)
        return;
      if (ec)
        return self->close();
      if (keep)
        return self->read_header();
      self->linger(false);
    });
  }

  void send(api_reply r, bool close_after, const std::string& allow = {}) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version_ == 10 ? 10 : 11);
    res->result(r.status >= 100 && r.status <= 599 ? static_cast<unsigned>(r.status) : 500u);
    res->set(http::field::server, "kith");
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    if (!allow.empty())
      res->set(http::field::allow, allow);
    if (r.binary) {
      res->set(http::field::content_type, "application/octet-stream");
      res->body() = std::move(*r.binary);
    } else {
      res->set(http::field::content_type, "application/json");
      res->body() = r.body.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    const bool keep = keep_alive_ && !close_after;
    res->keep_alive(keep);
    res->prepare_payload();
    stream_.expires_after(opts().write_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep, close_after](error_code ec, std::size_t) {
                        if (self->closed_)
                          return;
                        if (ec)
                          return self->close();
                        if (keep)
                          return self->read_header();
                        self->linger(close_after);
                      });
  }

  /// Half-closes and drains what the client still sends before closing: a
  /// close with unread input resets the connection, and the reset can
  /// destroy the response (the 413 or 400) before the client reads it.
  void linger(bool drain) {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (!drain)
      return close();
    stream_.expires_after(std::chrono::seconds(2));
    drain_some();
  }

  void drain_some() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (self->closed_)
                                return;
                              if (ec)
                                return self->close();
                              self->drain_some();
                            });
  }

  // --- event stream ----------------------------------------------------

  void start_events() {
    outbox_ = std::make_shared<event_outbox>(opts().sse_max_queued_events,
                                             opts().sse_max_queued_bytes);
    auto listener = [outbox = outbox_, ex = stream_.get_executor(),
                     weak = std::weak_ptr<http_session>(shared_from_this())](const json& ev) {
      if (outbox->push(format_event(ev)))
        net::post(ex, [weak] {
          if (auto s = weak.lock())
            s->on_events();
        });
    };
    try {
      watch_token_ = server_->backend().watch(std::move(listener));
    } catch (const std::exception& e) {
      outbox_.reset();
      return send(api_error(500, "internal", std::string("cannot watch the node: ") + e.what()),
                  true);
    } catch (...) {
      outbox_.reset();
      return send(api_error(500, "internal", "cannot watch the node"), true);
    }
    // The body runs until the connection closes, so no length and no
    // chunking: "Connection: close" delimits it.
    stream_.expires_never();
    write_events(std::string("HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/event-stream\r\n"
                             "Cache-Control: no-store\r\n"
                             "X-Content-Type-Options: nosniff\r\n"
                             "Server: kith\r\n"
                             "Connection: close\r\n"
                             "\r\n"
                             ": kith event stream\n\n"));
    watch_for_hangup();
    arm_keepalive();
  }

  /// Reads (and drops) whatever the client sends, to notice it leave.
  void watch_for_hangup() {
    stream_.socket().async_read_some(net::buffer(scratch_),
                                     [self = shared_from_this()](error_code ec, std::size_t) {
                                       if (self->closed_)
                                         return;
                                       if (ec)
                                         return self->close();
                                       self->watch_for_hangup();
                                     });
  }

  void arm_keepalive() {
    keepalive_timer_.expires_after(opts().sse_keepalive);
    keepalive_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_)
        return;
      if (self->writing_) {
        if (std::chrono::steady_clock::now() - self->write_started_ > self->opts().write_timeout)
          return self->close(); // stuck: the client stopped reading
      } else {
        self->write_events(": keepalive\n\n");
      }
      self->arm_keepalive();
    });
  }

  void on_events() {
    if (closed_)
      return;
    if (writing_) {
      // The write in flight drains the outbox when it completes, unless
      // the client stopped reading and the outbox overflowed meanwhile.
      if (outbox_->overflowed())
        close();
      return;
    }
    pump();
  }

  void pump() {
    std::string frames;
    switch (outbox_->take(frames)) {
    case event_outbox::taken::overflow:
      return close(); // fell too far behind
    case event_outbox::taken::empty:
      return;
    case event_outbox::taken::data:
      return write_events(std::move(frames));
    }
  }

  void write_events(std::string data) {
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    out_ = std::move(data);
    net::async_write(stream_.socket(), net::buffer(out_),
                     [self = shared_from_this()](error_code ec, std::size_t) {
                       self->writing_ = false;
                       if (self->closed_)
                         return;
                       if (ec)
                         return self->close();
                       self->pump();
                     });
  }

  // --- teardown ----------------------------------------------------------

  void close() {
    if (closed_)
      return;
    closed_ = true;
    if (outbox_)
      outbox_->close();
    if (watch_token_) {
      const auto token = *watch_token_;
      watch_token_.reset();
      try {
        server_->backend().unwatch(token);
      } catch (...) {
        // Nothing to do: the listener is inert once the outbox is closed.
      }
    }
    keepalive_timer_.cancel();
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    server_->unregister(id_, counted_);
  }

  std::shared_ptr<api_server_state> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  net::steady_timer keepalive_timer_;
  const std::uint64_t id_;
  /// False for a connection over max_connections, which only gets a 503.
  const bool counted_;
  bool closed_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::array<char, 4096> scratch_{};

  // Event stream state.
  std::shared_ptr<event_outbox> outbox_;
  std::optional<std::uint64_t> watch_token_;
  std::string out_;
  bool writing_ = false;
  std::chrono::steady_clock::time_point write_started_;
};

} // namespace

// ---------------------------------------------------------------------

namespace detail {

api_start_result api_server_state::start() {
  if (started_)
    return {0, "the API server is already started"};
  std::string host = opts_.bind;
  if (lower(host) == "localhost")
    host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  if (ec)
    return {0, "cannot listen on '" + opts_.bind +
                   "': not an IP address; use a loopback address such as 127.0.0.1"};
  if (!addr.is_loopback())
    return {0, "refusing to listen on " + opts_.bind +
                   ": the API has no authentication and is local only; use a loopback address "
                   "such as 127.0.0.1"};
  const tcp::endpoint ep(addr, opts_.port);
  const auto failed = [&](const char* what) {
    error_code ignored;
    acceptor_.close(ignored);
    return api_start_result{0, std::string("cannot listen on ") + ep.address().to_string() + ":" +
                                   std::to_string(ep.port()) + ": " + what + ": " + ec.message()};
  };
  acceptor_.open(ep.protocol(), ec);
  if (ec)
    return failed("open");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec)
    return failed("reuse_address");
  acceptor_.bind(ep, ec);
  if (ec)
    return failed("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return failed("listen");
  const auto bound = acceptor_.local_endpoint(ec);
  if (ec)
    return failed("local_endpoint");
  const std::string p = ":" + std::to_string(bound.port());
  hosts_ = {"127.0.0.1" + p, "localhost" + p, "[::1]" + p};
  const std::string literal =
      addr.is_v6() ? "[" + addr.to_string() + "]" + p : addr.to_string() + p;
  if (std::find(hosts_.begin(), hosts_.end(), literal) == hosts_.end())
    hosts_.push_back(literal);
  port_ = bound.port();
  started_ = true;
  net::post(acceptor_.get_executor(), [self = shared_from_this()] { self->accept(); });
  return {bound.port(), {}};
}

bool api_server_state::host_allowed(std::string_view host) const {
  const auto h = lower(host);
  return std::find(hosts_.begin(), hosts_.end(), h) != hosts_.end();
}

bool api_server_state::origin_allowed(std::string_view origin) const {
  const auto o = lower(origin);
  constexpr std::string_view scheme = "http://";
  if (o.compare(0, scheme.size(), scheme) != 0)
    return false;
  return host_allowed(std::string_view(o).substr(scheme.size()));
}

void api_server_state::accept() {
  if (stopping_ || !acceptor_.is_open())
    return;
  acceptor_.async_accept(net::make_strand(ioc_),
                         [self = shared_from_this()](error_code ec, tcp::socket socket) {
                           self->on_accept(ec, std::move(socket));
                         });
}

void api_server_state::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopping_ || ec == net::error::operation_aborted || !acceptor_.is_open())
    return;
  if (ec) {
    // Out of file descriptors and the like: back off instead of spinning.
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([self = shared_from_this()](error_code e) {
      if (!e)
        self->accept();
    });
    return;
  }
  std::shared_ptr<http_session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool counted = active_ < opts_.max_connections;
    if (counted)
      ++active_;
    // TODO(security): connections over the limit still cost a socket for
    // a few seconds each; a local flood could keep the slots busy.
    const auto id = next_id_++;
    session = std::make_shared<http_session>(shared_from_this(), std::move(socket), id, counted);
    sessions_.emplace(id, session);
  }
  session->start();
  accept();
}

void api_server_state::unregister(std::uint64_t id, bool counted) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.erase(id) != 0 && counted)
    --active_;
}

void api_server_state::shutdown() {
  if (stopping_)
    return;
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
  std::vector<std::shared_ptr<http_session>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, weak] : sessions_)
      if (auto s = weak.lock())
        live.push_back(std::move(s));
  }
  for (auto& s : live)
    s->shutdown();
}

} // namespace detail

// ---------------------------------------------------------------------

api_server::api_server(net::io_context& ioc, api_backend& backend, options opts)
    : state_(std::make_shared<detail::api_server_state>(ioc, backend, std::move(opts))) {}

api_server::~api_server() { stop(); }

api_start_result api_server::start() { return state_->start(); }

void api_server::stop() {
  net::dispatch(state_->executor(), [st = state_] { st->shutdown(); });
}

std::uint16_t api_server::port() const { return state_->port(); }

} // namespace kith::node
