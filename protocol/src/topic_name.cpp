#include "kith/protocol/topic_name.hpp"

#include "kith/protocol/string_pool.hpp"

namespace kith::protocol {

namespace {

/// Never destroyed: ids may be let go after static destruction (actors
/// stopping late); each id keeps the table alive anyway.
string_pool& ids() {
  static auto* pool = new string_pool;
  return *pool;
}

} // namespace

topic_name::topic_name(std::string_view id) {
  if (!id.empty())
    p_ = ids().intern(id);
}

const std::string& topic_name::none() {
  static const std::string none;
  return none;
}

std::size_t topic_name::held() { return ids().size(); }

} // namespace kith::protocol
