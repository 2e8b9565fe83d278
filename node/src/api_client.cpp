#include "kith/node/api_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <exception>
#include <string_view>
#include <utility>

namespace kith::node {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

/// One connection with a deadline over everything done on it. The
/// operations are asynchronous underneath so that the deadline can cancel
/// them; await() runs the private io_context until one completes.
class connection {
public:
  connection(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout)
      : host_(host), port_(port), socket_(ioc_), resolver_(ioc_), deadline_(ioc_) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([this](error_code ec) {
      if (ec)
        return;
      timed_out_ = true;
      resolver_.cancel();
      error_code ignored;
      socket_.close(ignored);
    });
  }

  ~connection() {
    deadline_.cancel();
    error_code ignored;
    socket_.close(ignored);
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Runs the operation `start(handler)` begins until it completes.
  template <class Start>
  error_code await(Start&& start) {
    bool done = false;
    error_code result;
    start([&done, &result](error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    if (ioc_.stopped())
      ioc_.restart();
    while (!done && ioc_.run_one() != 0) {
    }
    if (!done)
      return net::error::operation_aborted;
    return timed_out_ ? error_code(net::error::timed_out) : result;
  }

  /// An empty string, or what went wrong.
  std::string connect() {
    tcp::resolver::results_type endpoints;
    auto ec = await([&](auto handler) {
      resolver_.async_resolve(host_, std::to_string(port_),
                              [&endpoints, handler](error_code e,
                                                    tcp::resolver::results_type r) mutable {
                                endpoints = std::move(r);
                                handler(e);
                              });
    });
    if (ec)
      return "cannot resolve " + host_ + ": " + ec.message();
    ec = await([&](auto handler) { net::async_connect(socket_, endpoints, handler); });
    if (ec)
      return "cannot connect to " + host_ + ":" + std::to_string(port_) + ": " + ec.message() +
             " (is the node running?)";
    return {};
  }

  /// The Host header for this server.
  [[nodiscard]] std::string host_header() const {
    const bool v6 = host_.find(':') != std::string::npos && host_.front() != '[';
    return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
  }

  tcp::socket& socket() { return socket_; }

private:
  net::io_context ioc_;
  std::string host_;
  std::uint16_t port_;
  tcp::socket socket_;
  tcp::resolver resolver_;
  net::steady_timer deadline_;
  bool timed_out_ = false;
};

/// Parses server-sent events out of a byte stream.
class sse_parser {
public:
  /// Feeds bytes; calls on_event per complete event. False when the
  /// callback asked to stop.
  template <class OnEvent>
  bool feed(std::string_view bytes, OnEvent& on_event) {
    pending_.append(bytes.data(), bytes.size());
    std::size_t start = 0;
    for (;;) {
      const auto nl = pending_.find('\n', start);
      if (nl == std::string::npos)
        break;
      std::string_view line(pending_.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
      if (line.empty()) {
        if (has_data_ || !type_.empty()) {
          const bool go_on = on_event(type_.empty() ? std::string("message") : type_, data_);
          type_.clear();
          data_.clear();
          has_data_ = false;
          if (!go_on) {
            pending_.erase(0, start);
            return false;
          }
        }
        continue;
      }
      if (line.front() == ':')
        continue; // comment (keepalive)
      const auto colon = line.find(':');
      const auto field = line.substr(0, colon);
      auto value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      if (field == "event") {
        type_ = std::string(value);
      } else if (field == "data") {
        if (has_data_)
          data_ += '\n';
        data_.append(value.data(), value.size());
        has_data_ = true;
      }
    }
    pending_.erase(0, start);
    return true;
  }

private:
  std::string pending_;
  std::string type_;
  std::string data_;
  bool has_data_ = false;
};

} // namespace

api_result call_api(const std::string& host, std::uint16_t port, const std::string& method,
                    const std::string& target, const std::optional<std::string>& body,
                    std::string content_type, std::chrono::milliseconds timeout) {
  api_result out;
  try {
    const auto verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) {
      out.error = "unknown HTTP method '" + method + "'";
      return out;
    }
    connection c(host, port, timeout);
    if (auto err = c.connect(); !err.empty()) {
      out.error = std::move(err);
      return out;
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, c.host_header());
    req.set(http::field::user_agent, "kith-cli");
    if (body) {
      req.set(http::field::content_type, content_type);
      req.body() = *body;
    }
    req.keep_alive(false);
    req.prepare_payload();
    const auto write_ec =
        c.await([&](auto handler) { http::async_write(c.socket(), req, handler); });
    // Even when the write failed, the server may have answered first (a
    // 413 sent before the whole body went out).
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    const auto read_ec =
        c.await([&](auto handler) { http::async_read(c.socket(), buffer, parser, handler); });
    if (read_ec) {
      out.error = "no response from " + c.host_header() + ": " +
                  (write_ec ? write_ec.message() : read_ec.message());
      return out;
    }
    auto res = parser.release();
    out.ok = true;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
  } catch (const std::exception& e) {
    out.ok = false;
    out.error = e.what();
  }
  return out;
}

std::string url_encode(const std::string& s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0x0F]);
    }
  }
  return out;
}

bool read_events(const std::string& host, std::uint16_t port,
                 const std::function<bool(const std::string&, const std::string&)>& on_event,
                 std::chrono::milliseconds timeout) {
  try {
    connection c(host, port, timeout);
    if (!c.connect().empty())
      return false;
    const std::string request = "GET /v1/events HTTP/1.1\r\nHost: " + c.host_header() +
                                "\r\nAccept: text/event-stream\r\nUser-Agent: kith-cli\r\n\r\n";
    if (c.await([&](auto handler) { net::async_write(c.socket(), net::buffer(request), handler); }))
      return false;
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    if (c.await([&](auto handler) { http::async_read_header(c.socket(), buffer, parser, handler); }))
      return false;
    if (parser.get().result() != http::status::ok)
      return false;
    // The stream is delimited by the connection closing: what follows the
    // header (already partly in `buffer`) is the raw event text.
    sse_parser sse;
    auto callback = on_event;
    const auto first = buffer.data();
    if (!sse.feed(std::string_view(static_cast<const char*>(first.data()), first.size()), callback))
      return true;
    std::array<char, 8192> chunk{};
    for (;;) {
      std::size_t n = 0;
      const auto ec = c.await([&](auto handler) {
        c.socket().async_read_some(net::buffer(chunk),
                                   [&n, handler](error_code e, std::size_t got) mutable {
                                     n = got;
                                     handler(e);
                                   });
      });
      if (n > 0 && !sse.feed(std::string_view(chunk.data(), n), callback))
        return true;
      if (ec)
        return false;
    }
  } catch (const std::exception&) {
    return false;
  }
}

} // namespace kith::node
