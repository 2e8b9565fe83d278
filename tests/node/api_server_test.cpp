// The local API server against a fake backend, over real loopback sockets.
// The server runs on an io_context on a background thread; requests go
// through kith::node::call_api, or through raw sockets where a test needs
// headers or bytes the client would never send. Waits are bounded
// condition-variable waits, never sleeps.

#include "kith/node/api_client.hpp"
#include "kith/node/api_server.hpp"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace kith::node;
using namespace std::chrono_literals;

namespace {

struct call_record {
  std::string op;
  json params;
  std::string body;
};

/// Records calls and answers with canned replies: by default
/// {"op": op, "params": params}; some ops answer from another thread.
class fake_backend : public api_backend {
public:
  enum class misbehaviour { none, drop_done, throw_ };

  ~fake_backend() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads)
      t.join();
  }

  void call(const std::string& op, const json& params, std::string body,
            std::function<void(api_reply)> done) override {
    misbehaviour m;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back({op, params, body});
      m = misbehaviour_;
    }
    cv_.notify_all();
    if (m == misbehaviour::throw_)
      throw std::runtime_error("fake backend exploded");
    if (m == misbehaviour::drop_done)
      return; // `done` is destroyed unanswered
    api_reply r;
    if (op == "bundle_export") {
      r.binary = bundle_bytes();
    } else if (op == "bundle_import") {
      r.body = json{{"imported_bytes", body.size()}};
    } else {
      r.body = json{{"op", op}, {"params", params}};
    }
    if (async_ops_.count(op) != 0) {
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
    } else {
      done(std::move(r));
    }
  }

  std::uint64_t watch(std::function<void(const json&)> listener) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto token = next_token_++;
    listeners_[token] = std::move(listener);
    cv_.notify_all();
    return token;
  }

  void unwatch(std::uint64_t token) override {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.erase(token);
    unwatched_.push_back(token);
    cv_.notify_all();
  }

  /// Calls every listener, as the node does from its own threads.
  void emit(const json& ev) {
    std::vector<std::function<void(const json&)>> ls;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [token, l] : listeners_)
        ls.push_back(l);
    }
    for (auto& l : ls)
      l(ev);
  }

  static std::string bundle_bytes() {
    std::string b;
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < 256; ++i)
        b.push_back(static_cast<char>(i));
    return b;
  }

  [[nodiscard]] bool wait_watchers(std::size_t n, std::chrono::milliseconds t = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, t, [&] { return listeners_.size() >= n; });
  }
  [[nodiscard]] bool wait_unwatched(std::size_t n, std::chrono::milliseconds t = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, t, [&] { return unwatched_.size() >= n; });
  }
  [[nodiscard]] std::size_t watchers() {
    std::lock_guard<std::mutex> lock(mu_);
    return listeners_.size();
  }
  [[nodiscard]] std::size_t unwatched() {
    std::lock_guard<std::mutex> lock(mu_);
    return unwatched_.size();
  }
  [[nodiscard]] std::vector<call_record> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  [[nodiscard]] call_record last_call() {
    std::lock_guard<std::mutex> lock(mu_);
    REQUIRE(!calls_.empty());
    return calls_.back();
  }
  void set_misbehaviour(misbehaviour m) {
    std::lock_guard<std::mutex> lock(mu_);
    misbehaviour_ = m;
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<call_record> calls_;
  std::map<std::uint64_t, std::function<void(const json&)>> listeners_;
  std::vector<std::uint64_t> unwatched_;
  std::uint64_t next_token_ = 1;
  std::vector<std::thread> threads_;
  misbehaviour misbehaviour_ = misbehaviour::none;
  const std::set<std::string> async_ops_{"feed", "get", "bundle_export", "tag"};
};

api_server_options test_options() {
  api_server_options o;
  o.max_body_bytes = 4096;
  return o;
}

/// A server on an ephemeral port, its io_context on a background thread.
struct api_fixture {
  explicit api_fixture(api_server_options o = test_options()) : server(ioc, backend, std::move(o)) {
    const auto r = server.start();
    REQUIRE(r.ok());
    REQUIRE(r.port != 0);
    port = r.port;
    runner = std::thread([this] { ioc.run(); });
  }
  ~api_fixture() {
    server.stop();
    if (runner.joinable())
      runner.join();
  }

  api_result request(const std::string& method, const std::string& target,
                     std::optional<std::string> body = std::nullopt) {
    return call_api("127.0.0.1", port, method, target, body);
  }

  boost::asio::io_context ioc;
  fake_backend backend;
  api_server server;
  std::uint16_t port = 0;
  std::thread runner;
};

json body_of(const api_result& r) {
  INFO(r.body);
  REQUIRE(r.content_type == "application/json");
  return json::parse(r.body);
}

/// A blocking loopback socket with a receive timeout, for requests the
/// client would never send.
class raw_socket {
public:
  explicit raw_socket(std::uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    if (rcvbuf > 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_socket() { close(); }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  void send_all(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const auto n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        return; // the server may already have answered and closed
      off += static_cast<std::size_t>(n);
    }
  }

  /// Reads until the peer closes (or the 5 s receive timeout).
  std::string read_all() {
    std::string out;
    char buf[4096];
    for (;;) {
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

  /// Reads until `needle` has arrived; false on close or timeout.
  bool read_until(const std::string& needle, std::string& out) {
    char buf[4096];
    while (out.find(needle) == std::string::npos) {
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        return false;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

private:
  int fd_ = -1;
};

struct raw_response {
  int status = 0;
  std::string head;
  std::string body;
};

/// The first response in `bytes` (bodies with Content-Length only).
raw_response parse_response(const std::string& bytes) {
  raw_response r;
  const auto end = bytes.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  r.head = bytes.substr(0, end);
  REQUIRE(r.head.rfind("HTTP/1.", 0) == 0);
  r.status = std::stoi(r.head.substr(9, 3));
  r.body = bytes.substr(end + 4);
  return r;
}

/// One request with the given extra header lines, Connection: close.
raw_response raw_request(std::uint16_t port, const std::string& request_line,
                         const std::string& headers, const std::string& body = {}) {
  raw_socket s(port);
  std::string req = request_line + "\r\n" + headers + "Connection: close\r\n";
  if (!body.empty())
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  s.send_all(req);
  return parse_response(s.read_all());
}

std::string host_line(std::uint16_t port) {
  return "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
}

} // namespace

TEST_CASE("each route maps to its operation and parameters", "[api]") {
  api_fixture f;
  struct row {
    std::string method, target;
    std::optional<std::string> body;
    std::string op;
    json params;
  };
  const std::vector<row> rows = {
      {"GET", "/v1/status", {}, "status", json::object()},
      {"GET", "/v1/peers", {}, "peers", json::object()},
      {"GET", "/v1/topics", {}, "topics", json::object()},
      {"POST", "/v1/follow", R"({"id":"kabc"})", "follow", {{"id", "kabc"}}},
      {"POST", "/v1/follow", R"({"id":"kabc","address":"10.0.0.1:7000","extra":1})", "follow",
       {{"id", "kabc"}, {"address", "10.0.0.1:7000"}}},
      {"POST", "/v1/unfollow", R"({"id":"kabc"})", "unfollow", {{"id", "kabc"}}},
      {"POST", "/v1/follows", R"({"follows":[{"id":"kabc"},{"id":"kdef","address":"h:1"}]})",
       "follow", {{"follows", json::array({{{"id", "kabc"}}, {{"id", "kdef"}, {"address", "h:1"}}})}}},
      {"POST", "/v1/connect", R"({"address":"host:1"})", "connect", {{"address", "host:1"}}},
      {"POST", "/v1/connect", R"({"address":"host:1","id":"kx"})", "connect",
       {{"address", "host:1"}, {"id", "kx"}}},
      {"PUT", "/v1/docs/kabc/profile", R"({"doc":{"name":"Ann"}})", "put",
       {{"subject", "kabc/profile"}, {"doc", {{"name", "Ann"}}}}},
      {"PUT", "/v1/docs/kabc/profile", R"({"doc":{},"topic":"feed/kabc","contexts":{"name":"AQ"}})",
       "put",
       {{"subject", "kabc/profile"},
        {"doc", json::object()},
        {"topic", "feed/kabc"},
        {"contexts", {{"name", "AQ"}}}}},
      {"GET", "/v1/docs/kabc/profile", {}, "get", {{"subject", "kabc/profile"}}},
      {"GET", "/v1/docs/kabc/profile?topic=feed%2Fkabc", {}, "get",
       {{"subject", "kabc/profile"}, {"topic", "feed/kabc"}}},
      {"DELETE", "/v1/docs/kabc/profile", {}, "del", {{"subject", "kabc/profile"}}},
      {"DELETE", "/v1/docs/kabc/profile?predicate=name&topic=t1", {}, "del",
       {{"subject", "kabc/profile"}, {"predicate", "name"}, {"topic", "t1"}}},
      {"POST", "/v1/posts", R"({"text":"hello, world"})", "post", {{"text", "hello, world"}}},
      {"GET", "/v1/feed", {}, "feed", json::object()},
      {"GET", "/v1/feed?author=kabc&limit=20", {}, "feed", {{"author", "kabc"}, {"limit", 20}}},
      {"GET", "/v1/feed?author=&limit=", {}, "feed", json::object()},
      {"GET", "/v1/tags/rust", {}, "tag", {{"tag", "rust"}}},
      {"GET", "/v1/tags/c%2B%2B?limit=5", {}, "tag", {{"tag", "c++"}, {"limit", 5}}},
      {"GET", "/v1/bundle?topic=feed%2Fkabc", {}, "bundle_export", {{"topic", "feed/kabc"}}},
  };
  for (const auto& r : rows) {
    INFO(r.method << " " << r.target);
    const auto res = f.request(r.method, r.target, r.body);
    REQUIRE(res.ok);
    CHECK(res.status == 200);
    const auto call = f.backend.last_call();
    CHECK(call.op == r.op);
    CHECK(call.params == r.params);
    CHECK(call.body.empty());
    if (r.op != "bundle_export") {
      const auto j = body_of(res);
      CHECK(j["op"] == r.op);
      CHECK(j["params"] == r.params);
    }
  }
}

TEST_CASE("responses are JSON, never cached, and keep the connection alive", "[api]") {
  api_fixture f;
  raw_socket s(f.port);
  // Two pipelined requests on one connection: both are answered in order.
  s.send_all("GET /v1/status HTTP/1.1\r\n" + host_line(f.port) + "\r\n" +
             "GET /v1/peers HTTP/1.1\r\n" + host_line(f.port) + "Connection: close\r\n\r\n");
  const auto all = s.read_all();
  const auto first = all.find("HTTP/1.1 200");
  const auto second = all.find("HTTP/1.1 200", first + 1);
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(all.find("\"op\":\"status\"") < second);
  CHECK(all.find("\"op\":\"peers\"") > second);
  const auto head = parse_response(all).head;
  CHECK(head.find("Content-Type: application/json") != std::string::npos);
  CHECK(head.find("Cache-Control: no-store") != std::string::npos);
}

TEST_CASE("a percent-encoded subject keeps its slashes and bytes", "[api]") {
  api_fixture f;
  const std::string subject = "kabc/notes/2024 été?&#%/x";
  const auto res = f.request("GET", "/v1/docs/" + url_encode(subject));
  REQUIRE(res.status == 200);
  CHECK(f.backend.last_call().params["subject"] == subject);

  // Encoded and literal slashes mean the same thing.
  REQUIRE(f.request("GET", "/v1/docs/kabc%2Fnotes/a%2fb").status == 200);
  CHECK(f.backend.last_call().params["subject"] == "kabc/notes/a/b");

  // Query values: '+' is a space, escapes decode.
  REQUIRE(f.request("GET", "/v1/feed?author=a+b%2Bc").status == 200);
  CHECK(f.backend.last_call().params["author"] == "a b+c");

  const auto before = f.backend.calls().size();
  SECTION("a malformed escape is refused") {
    const auto bad = f.request("GET", "/v1/docs/kabc%2");
    CHECK(bad.status == 400);
    CHECK(body_of(bad)["error"]["code"] == "bad_request");
  }
  SECTION("bytes that are not UTF-8 are refused") {
    CHECK(f.request("GET", "/v1/docs/k%FF%FE").status == 400);
    CHECK(f.request("GET", "/v1/feed?author=%C0%AF").status == 400);
  }
  SECTION("an empty subject is refused") {
    CHECK(f.request("GET", "/v1/docs/").status == 400);
  }
  CHECK(f.backend.calls().size() == before);
}

TEST_CASE("url_encode leaves only unreserved characters", "[api]") {
  CHECK(url_encode("abc-XYZ_0.9~") == "abc-XYZ_0.9~");
  CHECK(url_encode("a/b c+d%") == "a%2Fb%20c%2Bd%25");
  CHECK(url_encode(std::string("\0\xff", 2)) == "%00%FF");
}

TEST_CASE("a foreign Host header is refused with 403", "[api]") {
  api_fixture f;
  const auto p = std::to_string(f.port);
  for (const std::string& host : std::vector<std::string>{"evil.example:" + p, "evil.example", "127.0.0.1",
                                 "127.0.0.1:" + std::to_string(f.port + 1), "localhost.evil:" + p}) {
    INFO(host);
    const auto r = raw_request(f.port, "GET /v1/status HTTP/1.1", "Host: " + host + "\r\n");
    CHECK(r.status == 403);
    CHECK(json::parse(r.body)["error"]["code"] == "forbidden_host");
  }
  // HTTP/1.0 without any Host.
  CHECK(raw_request(f.port, "GET /v1/status HTTP/1.0", "").status == 403);
  for (const std::string& host : std::vector<std::string>{"127.0.0.1:" + p, "localhost:" + p, "LocalHost:" + p, "[::1]:" + p}) {
    INFO(host);
    CHECK(raw_request(f.port, "GET /v1/status HTTP/1.1", "Host: " + host + "\r\n").status == 200);
  }
  CHECK(f.backend.calls().size() == 4);
}

TEST_CASE("a foreign Origin is refused with 403 and a local one is allowed", "[api]") {
  api_fixture f;
  const auto p = std::to_string(f.port);
  for (const std::string& origin : std::vector<std::string>{"http://evil.example", "http://evil.example:" + p, "null",
                                   "https://127.0.0.1:" + p, "http://127.0.0.1:1",
                                   "http://localhost:" + p + ".evil.example"}) {
    INFO(origin);
    const auto r = raw_request(f.port, "POST /v1/posts HTTP/1.1",
                               host_line(f.port) + "Origin: " + origin + "\r\n", R"({"text":"x"})");
    CHECK(r.status == 403);
    CHECK(json::parse(r.body)["error"]["code"] == "forbidden_origin");
  }
  CHECK(f.backend.calls().empty());
  for (const std::string& origin : std::vector<std::string>{"http://127.0.0.1:" + p, "http://localhost:" + p}) {
    INFO(origin);
    const auto r = raw_request(f.port, "POST /v1/posts HTTP/1.1",
                               host_line(f.port) + "Origin: " + origin + "\r\n", R"({"text":"x"})");
    CHECK(r.status == 200);
  }
  CHECK(f.backend.calls().size() == 2);
}

TEST_CASE("a body over the limit gets 413 and the server keeps serving", "[api]") {
  api_fixture f; // max_body_bytes = 4096
  const std::string big = R"({"text":")" + std::string(5000, 'x') + R"("})";
  const auto r = f.request("POST", "/v1/posts", big);
  REQUIRE(r.ok);
  CHECK(r.status == 413);
  CHECK(body_of(r)["error"]["code"] == "body_too_large");
  const auto bundle = f.request("POST", "/v1/bundle", std::string(10000, '\0'));
  CHECK(bundle.status == 413);
  CHECK(f.backend.calls().empty());
  // A chunked body is counted as it arrives.
  raw_socket s(f.port);
  std::string req = "POST /v1/bundle HTTP/1.1\r\n" + host_line(f.port) +
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 5; ++i)
    req += "400\r\n" + std::string(1024, 'y') + "\r\n";
  req += "0\r\n\r\n";
  s.send_all(req);
  CHECK(parse_response(s.read_all()).status == 413);
  CHECK(f.request("GET", "/v1/status").status == 200);
}

TEST_CASE("bad JSON and wrongly typed fields get 400 with a clear message", "[api]") {
  api_fixture f;
  struct row {
    std::string method, target, body, message;
  };
  const std::vector<row> rows = {
      {"POST", "/v1/follow", "{\"id\": ", "not valid JSON"},
      {"POST", "/v1/follow", "", "empty"},
      {"POST", "/v1/follow", "[1,2]", "must be a JSON object"},
      {"POST", "/v1/follow", R"({"id": 7})", "field 'id' must be a string"},
      {"POST", "/v1/follow", R"({"address": "a"})", "field 'id' is required"},
      {"POST", "/v1/follow", R"({"id": "k", "address": 1})", "field 'address' must be a string"},
      {"POST", "/v1/connect", R"({"id": "k"})", "field 'address' is required"},
      {"POST", "/v1/posts", R"({"text": ["a"]})", "field 'text' must be a string"},
      {"PUT", "/v1/docs/kabc/x", R"({"doc": "text"})", "field 'doc' must be an object"},
      {"PUT", "/v1/docs/kabc/x", R"({"doc": {}, "contexts": []})", "field 'contexts' must be an object"},
      {"PUT", "/v1/docs/kabc/x", R"({"doc": {}, "topic": 3})", "field 'topic' must be a string"},
      {"PUT", "/v1/docs/kabc/x", std::string(200, '[') + std::string(200, ']'), "deeper"},
      {"PUT", "/v1/docs/kabc/x", "{\"doc\": {\"a\": \"\xff\"}}", "not valid JSON"},
      {"GET", "/v1/feed?limit=ten", "", "'limit' must be a non-negative integer"},
      {"GET", "/v1/feed?limit=-1", "", "'limit' must be a non-negative integer"},
      {"GET", "/v1/bundle", "", "'topic' is required"},
  };
  for (const auto& r : rows) {
    INFO(r.method << " " << r.target << " " << r.body);
    const auto res = f.request(r.method, r.target, r.body);
    REQUIRE(res.ok);
    CHECK(res.status == 400);
    const auto j = body_of(res);
    CHECK(j["error"]["message"].get<std::string>().find(r.message) != std::string::npos);
  }
  CHECK(f.backend.calls().empty());
}

TEST_CASE("garbage on the socket gets 400 and does not hurt the server", "[api]") {
  api_fixture f;
  for (const std::string& garbage : std::vector<std::string>{
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
        "POST /v1/bundle HTTP/1.1\r\n" + host_line(f.port) + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", std::string("NOT HTTP AT ALL\r\n\r\n"),
        std::string("GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n"),
        std::string("GET /v1/status HTTP/1.1\r\nBad Header Line\r\n\r\n")}) {
    raw_socket s(f.port);
    s.send_all(garbage);
    const auto reply = s.read_all();
    if (!reply.empty())
      CHECK(parse_response(reply).status == 400);
  }
  { // A client that connects, sends half a request and vanishes.
    raw_socket s(f.port);
    s.send_all("POST /v1/posts HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Length: 100\r\n\r\n{");
  }
  { // A header block over the limit.
    raw_socket s(f.port);
    s.send_all("GET /v1/status HTTP/1.1\r\n" + host_line(f.port) + "X-Big: " +
               std::string(20000, 'a') + "\r\n\r\n");
    const auto reply = s.read_all();
    if (!reply.empty())
      CHECK(parse_response(reply).status == 431);
  }
  CHECK(f.request("GET", "/v1/status").status == 200);
  CHECK(f.backend.calls().size() == 1);
}

TEST_CASE("an unknown route gets 404 and a wrong method 405", "[api]") {
  api_fixture f;
  for (const std::string& target : std::vector<std::string>{"/", "/index.html", "/v1", "/v1/", "/v1/nope", "/v2/status",
                                   "/v1/status/", "/v1/docs", "/v1/tags"}) {
    INFO(target);
    const auto r = f.request("GET", target);
    CHECK(r.status == 404);
    CHECK(body_of(r)["error"]["code"] == "not_found");
  }
  struct row {
    std::string method, target, allow;
  };
  for (const auto& r : std::vector<row>{{"POST", "/v1/status", "GET"},
                                        {"GET", "/v1/follow", "POST"},
                                        {"DELETE", "/v1/posts", "POST"},
                                        {"POST", "/v1/docs/kabc/x", "GET, PUT, DELETE"},
                                        {"PUT", "/v1/bundle", "GET, POST"},
                                        {"POST", "/v1/events", "GET"}}) {
    INFO(r.method << " " << r.target);
    const auto res = f.request(r.method, r.target, std::string("{}"));
    CHECK(res.status == 405);
    CHECK(body_of(res)["error"]["code"] == "method_not_allowed");
  }
  const auto raw = raw_request(f.port, "PATCH /v1/docs/kabc/x HTTP/1.1", host_line(f.port));
  CHECK(raw.status == 405);
  CHECK(raw.head.find("Allow: GET, PUT, DELETE") != std::string::npos);
  CHECK(f.backend.calls().empty());
}

TEST_CASE("bundle export and import pass bytes through unchanged", "[api]") {
  api_fixture f;
  const auto exported = f.request("GET", "/v1/bundle?topic=feed%2Fkabc");
  REQUIRE(exported.status == 200);
  CHECK(exported.content_type == "application/octet-stream");
  CHECK(exported.body == fake_backend::bundle_bytes());

  std::string upload = fake_backend::bundle_bytes();
  upload += "\r\n\r\n\0tail";
  const auto imported =
      call_api("127.0.0.1", f.port, "POST", "/v1/bundle", upload, "application/octet-stream");
  REQUIRE(imported.status == 200);
  const auto call = f.backend.last_call();
  CHECK(call.op == "bundle_import");
  CHECK(call.params == json::object());
  CHECK(call.body == upload);
  CHECK(body_of(imported)["imported_bytes"] == upload.size());
}

TEST_CASE("an upload with Expect: 100-continue is answered without a stall", "[api]") {
  api_fixture f;
  raw_socket s(f.port);
  const std::string body = R"({"text":"patient"})";
  s.send_all("POST /v1/posts HTTP/1.1\r\n" + host_line(f.port) +
             "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\nConnection: close\r\n\r\n");
  std::string got;
  REQUIRE(s.read_until("\r\n\r\n", got));
  CHECK(got.rfind("HTTP/1.1 100 Continue", 0) == 0);
  s.send_all(body);
  got += s.read_all();
  CHECK(got.find("HTTP/1.1 200") != std::string::npos);
  CHECK(f.backend.last_call().params["text"] == "patient");
}

TEST_CASE("a backend that throws or drops the reply gets 500, not a hang", "[api]") {
  api_fixture f;
  f.backend.set_misbehaviour(fake_backend::misbehaviour::throw_);
  auto r = f.request("GET", "/v1/status", std::nullopt);
  CHECK(r.status == 500);
  CHECK(body_of(r)["error"]["code"] == "internal");
  f.backend.set_misbehaviour(fake_backend::misbehaviour::drop_done);
  r = f.request("GET", "/v1/status", std::nullopt);
  CHECK(r.status == 500);
  f.backend.set_misbehaviour(fake_backend::misbehaviour::none);
  CHECK(f.request("GET", "/v1/status").status == 200);
}

TEST_CASE("the server refuses to listen on a non-loopback address", "[api]") {
  boost::asio::io_context ioc;
  fake_backend backend;
  for (const std::string& bind : std::vector<std::string>{"0.0.0.0", "::", "192.168.1.10", "8.8.8.8", "example.com", ""}) {
    INFO(bind);
    api_server_options o;
    o.bind = bind;
    api_server s(ioc, backend, o);
    const auto r = s.start();
    CHECK(!r.ok());
    CHECK(!r.error.empty());
    CHECK(s.port() == 0);
  }
  api_server_options o;
  o.bind = "localhost";
  api_server s(ioc, backend, o);
  const auto r = s.start();
  INFO(r.error);
  CHECK(r.ok());
  CHECK(r.port == s.port());
}

TEST_CASE("connections over the limit get 503", "[api]") {
  auto o = test_options();
  o.max_connections = 1;
  api_fixture f(o);
  raw_socket holder(f.port); // an idle keep-alive connection holds the one slot
  holder.send_all("GET /v1/status HTTP/1.1\r\n" + host_line(f.port) + "\r\n");
  std::string got;
  REQUIRE(holder.read_until("\"status\"", got));
  const auto r = f.request("GET", "/v1/status");
  REQUIRE(r.ok);
  CHECK(r.status == 503);
  CHECK(body_of(r)["error"]["code"] == "too_many_connections");
  holder.close();
  // The slot frees once the server sees the close.
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i)
    freed = f.request("GET", "/v1/status").status == 200;
  CHECK(freed);
}

TEST_CASE("server-sent events arrive in order", "[api]") {
  api_fixture f;
  std::vector<std::pair<std::string, std::string>> got;
  bool stopped = false;
  std::thread reader([&] {
    stopped = read_events("127.0.0.1", f.port,
                          [&](const std::string& type, const std::string& data) {
                            got.emplace_back(type, data);
                            return got.size() < 200;
                          },
                          10s);
  });
  REQUIRE(f.backend.wait_watchers(1));
  for (int i = 0; i < 200; ++i) {
    if (i % 2 == 0)
      f.backend.emit({{"type", "change"}, {"topic", "feed/kabc"}, {"subject", "kabc/p"},
                      {"predicate", "n"}, {"seq", i}, {"text", "line\nbreak"}});
    else
      f.backend.emit({{"type", "peer"}, {"id", "kx"}, {"state", "up"}, {"seq", i}});
  }
  reader.join();
  CHECK(stopped);
  REQUIRE(got.size() == 200);
  for (int i = 0; i < 200; ++i) {
    const auto j = json::parse(got[i].second);
    CHECK(got[i].first == (i % 2 == 0 ? "change" : "peer"));
    CHECK(j["seq"] == i);
    CHECK(j["type"] == got[i].first);
  }
  CHECK(json::parse(got[0].second)["text"] == "line\nbreak");
  // The client hung up: the server notices and unwatches.
  CHECK(f.backend.wait_unwatched(1));
  CHECK(f.backend.watchers() == 0);
}

TEST_CASE("an event stream sends keepalive comments", "[api]") {
  auto o = test_options();
  o.sse_keepalive = 20ms;
  api_fixture f(o);
  raw_socket s(f.port);
  s.send_all("GET /v1/events HTTP/1.1\r\n" + host_line(f.port) + "\r\n");
  std::string got;
  REQUIRE(s.read_until(": keepalive\n\n", got));
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(got.find("Cache-Control: no-store") != std::string::npos);
  // An event type cannot smuggle extra lines into the stream.
  REQUIRE(f.backend.wait_watchers(1));
  f.backend.emit({{"type", "peer\ndata: forged"}, {"id", "k"}});
  got.clear();
  REQUIRE(s.read_until("}\n\n", got));
  const auto ev = got.substr(got.find("event:"));
  CHECK(ev.rfind("event: peerdata: forged\ndata: {", 0) == 0);
}

TEST_CASE("a client that falls behind on events is disconnected", "[api]") {
  auto o = test_options();
  o.sse_max_queued_bytes = 256 * 1024;
  api_fixture f(o);
  raw_socket slow(f.port, 4096); // small receive buffer, never read
  slow.send_all("GET /v1/events HTTP/1.1\r\n" + host_line(f.port) + "\r\n");
  REQUIRE(f.backend.wait_watchers(1));
  const json ev = {{"type", "change"}, {"pad", std::string(64 * 1024, 'z')}};
  int sent = 0;
  while (f.backend.unwatched() == 0 && sent < 20000) {
    f.backend.emit(ev);
    ++sent;
  }
  CHECK(f.backend.wait_unwatched(1));
  INFO("events sent before the disconnect: " << sent);
  CHECK(f.request("GET", "/v1/status").status == 200);
}

TEST_CASE("stop() with an open event stream returns promptly", "[api]") {
  api_fixture f;
  std::atomic<bool> reader_done{false};
  bool result = true;
  std::thread reader([&] {
    result = read_events("127.0.0.1", f.port,
                         [](const std::string&, const std::string&) { return true; }, 30s);
    reader_done = true;
  });
  REQUIRE(f.backend.wait_watchers(1));
  const auto t0 = std::chrono::steady_clock::now();
  f.server.stop();
  f.runner.join(); // run() returns: the server left no work behind
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(elapsed < 2s);
  reader.join();
  CHECK(reader_done);
  CHECK(!result); // the stream ended, not the callback
  CHECK(f.backend.unwatched() == 1);
  // The port is closed.
  const auto after = call_api("127.0.0.1", f.port, "GET", "/v1/status", std::nullopt,
                              "application/json", 2s);
  CHECK(!after.ok);
}

TEST_CASE("the client reports a refused connection", "[api]") {
  std::uint16_t port;
  {
    boost::asio::io_context ioc;
    fake_backend backend;
    api_server s(ioc, backend);
    port = s.start().port;
    REQUIRE(port != 0);
  } // closed again
  const auto r = call_api("127.0.0.1", port, "GET", "/v1/status", std::nullopt,
                          "application/json", 2s);
  CHECK(!r.ok);
  CHECK(!r.error.empty());
  CHECK(!read_events("127.0.0.1", port, [](const std::string&, const std::string&) { return true; },
                     2s));
}
