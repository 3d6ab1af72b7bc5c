// Where hostvisor keeps its data when nobody says: shared by the daemon and
// the CLI so both find the same socket. Reads the environment; call from main.
#pragma once

#include <string>

namespace hv {

// $HOSTVISOR_DATA_DIR, else /var/lib/hostvisor for root, else
// $XDG_DATA_HOME/hostvisor, else $HOME/.local/share/hostvisor.
std::string defaultDataDir();

// Files inside a data dir.
inline std::string socketPath(const std::string& dataDir) { return dataDir + "/api.sock"; }
inline std::string adminTokenPath(const std::string& dataDir) { return dataDir + "/admin.token"; }

}  // namespace hv
