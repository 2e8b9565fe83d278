#include "kith/causality/scheme.hpp"

namespace kith::causality {

std::string_view to_string(scheme_kind k) {
  switch (k) {
    case scheme_kind::ndc: return "ndc";
    case scheme_kind::dvv: return "dvv";
    case scheme_kind::vv: return "vv";
  }
  return "?";
}

std::optional<scheme_kind> parse_scheme(std::string_view name) {
  for (auto k : {scheme_kind::ndc, scheme_kind::dvv, scheme_kind::vv})
    if (name == to_string(k))
      return k;
  return std::nullopt;
}

std::unique_ptr<replica_scheme> make_scheme(scheme_kind kind, replica_id self,
                                            const scheme_options& opts) {
  switch (kind) {
    case scheme_kind::ndc: return detail::make_ndc_scheme(self, opts);
    case scheme_kind::dvv: return detail::make_dvv_scheme(self, opts);
    case scheme_kind::vv: return detail::make_vv_scheme(self, opts);
  }
  return nullptr;
}

} // namespace kith::causality
