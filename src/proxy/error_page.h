// The proxy's own answers (400, 403, 404, 408, 413, 429, 431, 502, 503, 504):
// a short text/plain body with the status and a hint, e.g.
// "502 Bad Gateway: instance chat is not running". Pure; any thread.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string_view>

namespace hv::proxy {

boost::beast::http::response<boost::beast::http::string_body> errorResponse(boost::beast::http::status status,
                                                                            std::string_view hint, bool keepAlive);

}  // namespace hv::proxy
