#include "supervisor/spawn_plan.h"

#include "base/strings.h"

namespace hv::supervisor {

os::SpawnRequest planSpawn(const store::InstanceRecord& spec, const store::AccountRecord& account,
                           bool dropPrivileges) {
  const std::string port = std::to_string(spec.port);
  os::SpawnRequest req;
  req.path = spec.command;
  req.argv.reserve(spec.args.size() + 1);
  req.argv.push_back(spec.command);
  for (const auto& arg : spec.args) req.argv.push_back(replaceAll(arg, "{port}", port));

  req.envp = {
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "HOME=" + account.home,
      "USER=" + account.user,
      "LOGNAME=" + account.user,
      "SHELL=/bin/sh",
      "LANG=C.UTF-8",
  };
  for (const auto& [k, v] : spec.env) {
    std::string prefix = k + "=";
    std::erase_if(req.envp, [&](const std::string& e) { return startsWith(e, prefix); });
    req.envp.push_back(prefix + v);
  }
  req.envp.push_back("PORT=" + port);

  req.cwd = spec.cwd.empty() ? account.home : spec.cwd;
  if (dropPrivileges) {
    req.uid = account.uid;
    req.gid = account.gid;
    req.groups = {account.gid};
  }
  return req;
}

}  // namespace hv::supervisor
