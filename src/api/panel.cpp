#include "api/panel.h"

#include <boost/beast/http.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "api/panel_assets.h"

namespace hv::api {

namespace http = boost::beast::http;

namespace {

bool acceptsGzip(const Request& req) {
  const std::string_view accept = req[http::field::accept_encoding];
  return accept.find("gzip") != std::string_view::npos;
}

// A file of HOSTVISOR_WEB_DIR, for working on the panel without a rebuild.
// Only "/NAME" with NAME of [A-Za-z0-9._-] and no "..": the panel is one flat folder.
bool isPanelPath(std::string_view path) {
  if (path.size() < 2 || path[0] != '/' || path.find("..") != std::string_view::npos) return false;
  for (char c : path.substr(1)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> fromDevDir(std::string_view path, const PanelAsset*& asset) {
  const char* dir = std::getenv("HOSTVISOR_WEB_DIR");
  if (!dir || !*dir || !isPanelPath(path)) return std::nullopt;
  std::ifstream in(std::string(dir) + std::string(path), std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  static const PanelAsset kTypes[] = {{".html", "text/html; charset=utf-8", {}, {}},
                                      {".js", "text/javascript; charset=utf-8", {}, {}},
                                      {".css", "text/css; charset=utf-8", {}, {}},
                                      {".svg", "image/svg+xml", {}, {}}};
  for (const auto& t : kTypes)
    if (path.ends_with(t.path)) asset = &t;
  return asset ? std::optional<std::string>(out.str()) : std::nullopt;
}

}  // namespace

void setBrowserSafetyHeaders(Response& res) {
  res.set("Content-Security-Policy",
          "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  res.set("X-Frame-Options", "DENY");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
}

std::optional<Response> servePanel(const Request& req) {
  if (req.method() != http::verb::get && req.method() != http::verb::head) return std::nullopt;
  std::string_view path = req.target();
  path = path.substr(0, path.find('?'));
  if (path == "/") path = "/index.html";
  const PanelAsset* asset = nullptr;
  std::optional<std::string> dev = fromDevDir(path, asset);
  if (!dev) {
    asset = nullptr;
    for (const PanelAsset& a : panelAssets())
      if (a.path == path) asset = &a;
    if (!asset) return std::nullopt;
  }
  Response res{http::status::ok, req.version()};
  res.set(http::field::server, "hostvisor");
  res.set(http::field::content_type, asset->type);
  // Revalidated each time (the files change with the binary); small enough.
  res.set(http::field::cache_control, "no-cache");
  res.set(http::field::vary, "Accept-Encoding");
  setBrowserSafetyHeaders(res);
  if (dev) {
    res.body() = std::move(*dev);
  } else if (acceptsGzip(req) && !asset->gzip.empty()) {
    res.set(http::field::content_encoding, "gzip");
    res.body() = std::string(asset->gzip);
  } else {
    res.body() = std::string(asset->raw);
  }
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();
  return res;
}

}  // namespace hv::api
