#include "proxy/error_page.h"

#include <fmt/format.h>

namespace hv::proxy {

namespace http = boost::beast::http;

http::response<http::string_body> errorResponse(http::status status, std::string_view hint, bool keepAlive) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "hostvisor");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  if (status == http::status::service_unavailable) res.set(http::field::retry_after, "2");
  res.body() = fmt::format("{} {}: {}\n", static_cast<unsigned>(status), http::obsolete_reason(status), hint);
  res.keep_alive(keepAlive);
  res.prepare_payload();
  return res;
}

}  // namespace hv::proxy
