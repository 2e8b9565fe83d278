#pragma once

// The contract between the local HTTP API (api_server, Boost.Beast) and the
// node behind it. The server parses HTTP, enforces the local-only rules
// (127.0.0.1 bind, Host and Origin checks), maps each route to an
// operation name and JSON parameters (docs/api.md lists them), and calls
// the backend; the backend runs the operation on the node's actors and
// calls `done` exactly once, from any thread.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace kith::node {

using json = nlohmann::json;

struct api_reply {
  /// HTTP status: 200 ok, 400 bad input, 403 refused, 404 not found,
  /// 409 conflict, 503 not ready, 500 internal.
  int status = 200;
  /// JSON body; errors are {"error": {"code": "...", "message": "..."}}.
  json body = json::object();
  /// When set, the response is these bytes (application/octet-stream)
  /// instead of the JSON body (bundle export).
  std::optional<std::string> binary;
};

[[nodiscard]] inline api_reply api_error(int status, std::string code, std::string message) {
  api_reply r;
  r.status = status;
  r.body = json{{"error", json{{"code", std::move(code)}, {"message", std::move(message)}}}};
  return r;
}

class api_backend {
public:
  virtual ~api_backend() = default;
  /// Runs operation `op` with `params` (and, for uploads, the raw request
  /// body). `done` is called exactly once, possibly from another thread.
  virtual void call(const std::string& op, const json& params, std::string body,
                    std::function<void(api_reply)> done) = 0;
  /// Registers a listener for the change stream (each event a JSON
  /// object with a "type"). Listeners are called from any thread and must
  /// not block. Returns a token for unwatch.
  virtual std::uint64_t watch(std::function<void(const json&)> listener) = 0;
  virtual void unwatch(std::uint64_t token) = 0;
};

} // namespace kith::node
