// ScopeExit: runs a callable when the scope ends, however it ends (return,
// early error return). For cleanup that must happen on every path.
#pragma once

#include <utility>

namespace hv {

template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  F f_;
};

}  // namespace hv
