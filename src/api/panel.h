// Panel: serves the control panel's files (web/, embedded at build time) at
// "/" of the API's TCP listener, with the headers that keep a page with a
// session cookie safe: a strict Content-Security-Policy (no inline script, no
// other origin), no framing, no MIME sniffing, no referrer. gzip when the
// browser takes it. HOSTVISOR_WEB_DIR (development only) serves the files
// from that directory instead, read at each request.
// Control thread; pure apart from that directory.
#pragma once

#include <optional>

#include "api/api.h"

namespace hv::api {

// The answer for a GET/HEAD of "/" or "/FILE", or nullopt when the target is
// not one of the panel's files.
std::optional<Response> servePanel(const Request& req);

// The security headers of every panel page and API answer to a browser.
void setBrowserSafetyHeaders(Response& res);

}  // namespace hv::api
