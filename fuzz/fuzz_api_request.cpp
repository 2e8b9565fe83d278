// fuzz_api_request: the local HTTP API (node::api_server, Boost.Beast) fed
// raw request bytes. One real server listens on 127.0.0.1 for the whole
// run, on an io_context this thread drives; each input is one TCP
// connection: the bytes are written, the client half-closes, and the
// server's answer is read to the end. The backend is a fake that answers
// every operation at once (and emits one event to event streams), so only
// the HTTP parsing, the local-only checks, routing and parameter checks are
// under test.
//
// The Host header must name the server's port, which is only known at run
// time: every "@HOST@" in the input is replaced by "127.0.0.1:<port>"
// before sending (the seeds use it), so inputs replay on any port.
//
// Invariant: the server answers every complete request with a status line
// (or closes a connection it cannot parse) within the io_context's reach:
// an input that never finishes is reported by libFuzzer's -timeout.

#include "kith/node/api_server.hpp"

#include "common.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

using namespace kith;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using node::json;

namespace {

class fake_backend final : public node::api_backend {
public:
  void call(const std::string& op, const json& params, std::string body,
            std::function<void(node::api_reply)> done) override {
    node::api_reply r;
    if (op == "bundle_export")
      r.binary = std::string("KITHBNDL\0\1", 10);
    else if (op == "bundle_import")
      r.body = json{{"imported_bytes", body.size()}};
    else if (op == "status")
      r.body = json{{"id", "k..."}, {"weird", std::string("\xff\xfe", 2)}}; // dumped with replace
    else
      r.body = json{{"op", op}, {"params", params}};
    done(std::move(r));
  }
  std::uint64_t watch(std::function<void(const json&)> listener) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto token = ++next_;
    listener(json{{"type", "put\r\nevent: forged"}, {"data", std::string("a\nb\xff", 4)}});
    listeners_.emplace(token, std::move(listener));
    return token;
  }
  void unwatch(std::uint64_t token) override {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.erase(token);
  }

private:
  std::mutex mu_;
  std::map<std::uint64_t, std::function<void(const json&)>> listeners_;
  std::uint64_t next_ = 0;
};

struct server {
  net::io_context ioc;
  fake_backend backend;
  node::api_server api;
  std::uint16_t port = 0;
  std::string host;

  static node::api_server_options options() {
    node::api_server_options o;
    o.max_body_bytes = 64 << 10;
    o.max_header_bytes = 8 << 10;
    o.max_json_depth = 128;
    // The client always half-closes after its bytes, so nothing should
    // wait on a timer; short timers keep a stuck case from stalling long.
    o.idle_timeout = std::chrono::seconds(2);
    o.write_timeout = std::chrono::seconds(2);
    return o;
  }

  server() : api(ioc, backend, options()) {
    auto r = api.start();
    if (!r.ok())
      fuzz::invariant_failed("the API server does not start", r.error);
    port = r.port;
    host = "127.0.0.1:" + std::to_string(port);
  }
};

server& the_server() {
  // Never destroyed: the server's handlers and the io_context must not be
  // torn down while libFuzzer is exiting from inside a callback.
  static server* s = new server(); // NOLINT: intentionally leaked, see above
  return *s;
}

std::string with_host(std::string_view in, const std::string& host) {
  static constexpr std::string_view token = "@HOST@";
  std::string out;
  out.reserve(in.size() + 16);
  std::size_t i = 0;
  while (i < in.size()) {
    if (in.substr(i, token.size()) == token) {
      out += host;
      i += token.size();
    } else {
      out.push_back(in[i++]);
    }
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& s = the_server();
  const std::string request =
      with_host(std::string_view(reinterpret_cast<const char*>(data), size), s.host);

  tcp::socket client(s.ioc);
  std::string response;
  std::array<char, 4096> buf{};
  bool done = false;
  boost::system::error_code failure;

  std::function<void()> read_more = [&] {
    client.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      response.append(buf.data(), n);
      if (ec) {
        if (ec != net::error::eof && ec != net::error::connection_reset)
          failure = ec;
        done = true;
        return;
      }
      read_more();
    });
  };
  client.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), s.port),
                       [&](boost::system::error_code ec) {
                         if (ec) {
                           failure = ec;
                           done = true;
                           return;
                         }
                         read_more();
                         net::async_write(client, net::buffer(request),
                                          [&](boost::system::error_code wec, std::size_t) {
                                            boost::system::error_code ignored;
                                            if (!wec)
                                              client.shutdown(tcp::socket::shutdown_send, ignored);
                                          });
                       });
  s.ioc.restart();
  while (!done)
    s.ioc.run_one();
  if (failure && failure != net::error::broken_pipe)
    fuzz::invariant_failed("the client side failed", failure.message());
  boost::system::error_code ignored;
  client.close(ignored);
  // Let the server finish closing its side before the next input.
  s.ioc.restart();
  while (s.ioc.poll() != 0) {
  }
  if (!response.empty() && response.rfind("HTTP/1.", 0) != 0)
    fuzz::invariant_failed("the server's answer does not start with a status line",
                           response.substr(0, 64));
  return 0;
}
