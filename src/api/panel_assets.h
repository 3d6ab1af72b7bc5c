// The control panel's files (web/), embedded at build time by
// cmake/embed_web.cmake: each as its bytes and gzip -9'd. Immutable; any thread.
#pragma once

#include <span>
#include <string_view>

namespace hv::api {

struct PanelAsset {
  std::string_view path;  // "/index.html", "/app.js", ...
  std::string_view type;  // Content-Type
  std::string_view raw;
  std::string_view gzip;
};

std::span<const PanelAsset> panelAssets();

}  // namespace hv::api
