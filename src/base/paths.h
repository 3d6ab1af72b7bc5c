// Where hostvisor keeps its data when nobody says: shared by the daemon and
// the CLI so both find the same socket. Reads the environment; call from main.
#pragma once

#include <string>

#include "base/result.h"

namespace hv {

// $HOSTVISOR_DATA_DIR, else /var/lib/hostvisor for root, else
// $XDG_DATA_HOME/hostvisor, else $HOME/.local/share/hostvisor.
std::string defaultDataDir();

// Files inside a data dir.
inline std::string socketPath(const std::string& dataDir) { return dataDir + "/api.sock"; }
inline std::string adminTokenPath(const std::string& dataDir) { return dataDir + "/admin.token"; }

// Writes `text` to `path` via a temp file and rename(2): never half-written.
Status writeFileAtomic(const std::string& path, const std::string& text, int mode);

}  // namespace hv
