#include "metrics_http.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <map>

namespace kith::relay::program {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
/// Scrapers and health checks send a few hundred bytes; anything larger
/// or slower is not one of them.
constexpr std::size_t max_header_bytes = 8192;
constexpr auto request_timeout = std::chrono::seconds(5);
constexpr std::size_t max_sessions = 64;
} // namespace

struct metrics_http::state : std::enable_shared_from_this<metrics_http::state> {
  state(asio::io_context& i, handler h) : io(i), acceptor(i), answer(std::move(h)) {}

  struct session {
    explicit session(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer{max_header_bytes};
    http::request_parser<http::empty_body> parser;
    http::response<http::string_body> response;
  };

  asio::io_context& io;
  tcp::acceptor acceptor;
  handler answer;
  bool stopped = false;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, std::shared_ptr<session>> sessions;

  void accept() {
    acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
      if (self->stopped || ec == asio::error::operation_aborted)
        return;
      if (!ec && self->sessions.size() < max_sessions)
        self->start(std::move(s));
      if (ec) {
        // Out of descriptors, say: retrying at once would spin a core.
        auto t = std::make_shared<asio::steady_timer>(self->io, std::chrono::milliseconds(100));
        t->async_wait([self, t](boost::system::error_code) {
          if (!self->stopped)
            self->accept();
        });
        return;
      }
      // Over max_sessions the socket closes as it goes out of scope.
      self->accept();
    });
  }

  void start(tcp::socket s) {
    const std::uint64_t id = next_id++;
    auto sn = std::make_shared<session>(std::move(s));
    sessions.emplace(id, sn);
    sn->parser.header_limit(max_header_bytes);
    sn->parser.body_limit(0);
    sn->stream.expires_after(request_timeout);
    http::async_read(sn->stream, sn->buffer, sn->parser,
                     [self = shared_from_this(), id, sn](boost::system::error_code ec, std::size_t) {
                       if (self->stopped)
                         return;
                       if (ec) {
                         self->end(id);
                         return;
                       }
                       self->respond(id, sn);
                     });
  }

  void respond(std::uint64_t id, const std::shared_ptr<session>& sn) {
    const auto& req = sn->parser.get();
    http_answer a = answer(std::string_view(req.method_string().data(), req.method_string().size()),
                           std::string_view(req.target().data(), req.target().size()));
    auto& res = sn->response;
    res.version(req.version());
    res.result(static_cast<http::status>(a.status));
    res.set(http::field::server, "kith-relay");
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);
    if (req.method() != http::verb::head)
      res.body() = std::move(a.body);
    res.prepare_payload();
    if (req.method() == http::verb::head)
      res.content_length(a.body.size());
    http::async_write(sn->stream, res,
                      [self = shared_from_this(), id, sn](boost::system::error_code, std::size_t) {
                        if (self->stopped)
                          return;
                        boost::system::error_code ignored;
                        sn->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        self->end(id);
                      });
  }

  void end(std::uint64_t id) {
    auto it = sessions.find(id);
    if (it == sessions.end())
      return;
    boost::system::error_code ignored;
    it->second->stream.socket().close(ignored);
    sessions.erase(it);
  }

  void stop() {
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (auto& [id, sn] : sessions)
      sn->stream.socket().close(ignored);
    sessions.clear();
  }
};

metrics_http::metrics_http(asio::io_context& io, handler h)
    : state_(std::make_shared<state>(io, std::move(h))) {}

metrics_http::~metrics_http() {
  state_->stop();
}

std::variant<std::uint16_t, std::string> metrics_http::listen(const std::string& host,
                                                              std::uint16_t port) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec)
    return "not an IP address: '" + host + "'";
  const tcp::endpoint ep(addr, port);
  auto& acc = state_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acc.close(ignored);
    return "cannot listen for HTTP on " + host + ":" + std::to_string(port) + ": " + ec.message();
  }
  const auto bound = acc.local_endpoint(ec).port();
  state_->accept();
  return bound;
}

void metrics_http::stop() {
  state_->stop();
}

} // namespace kith::relay::program
