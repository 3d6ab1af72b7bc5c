#include "api/sessions.h"

#include <gtest/gtest.h>

namespace hv::api {
namespace {

using namespace std::chrono_literals;

TEST(Sessions, OpenFindExpireAndClose) {
  SessionStore store;
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  const std::string id = store.open(Caller{false, "ann", "token of account ann"}, t0);
  ASSERT_EQ(id.size(), 64u);
  Session* s = store.find(id, t0 + 29min);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->caller.account, "ann");
  EXPECT_EQ(s->csrf.size(), 64u);
  EXPECT_NE(s->csrf, id);
  EXPECT_NE(store.find(id, t0 + 58min), nullptr) << "a request restarts the idle clock";
  EXPECT_EQ(store.find(id, t0 + 58min + SessionStore::kIdle), nullptr) << "idle too long";
  const std::string other = store.open(Caller{false, "bob", ""}, t0);
  std::string wrong = other;  // one hex digit off (flipped, so never the id itself)
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(store.find(wrong, t0), nullptr);
  EXPECT_EQ(store.find("short", t0), nullptr);
  store.close(other);
  EXPECT_EQ(store.find(other, t0), nullptr);
}

TEST(Sessions, ARotatedAccountLosesItsSessionsButNotTheAdmins) {
  SessionStore store;
  const auto now = std::chrono::steady_clock::time_point{};
  const std::string ann = store.open(Caller{false, "ann", ""}, now);
  const std::string admin = store.open(Caller{true, "ann", "admin token"}, now);
  store.closeAccount("ann");
  EXPECT_EQ(store.find(ann, now), nullptr);
  EXPECT_NE(store.find(admin, now), nullptr);
}

TEST(Sessions, CookieValueFindsTheNamedOne) {
  EXPECT_EQ(cookieValue("a=1; hv_session=abc; b=2", "hv_session"), "abc");
  EXPECT_EQ(cookieValue("hv_session=x", "hv_session"), "x");
  EXPECT_EQ(cookieValue("xhv_session=1", "hv_session"), "");
  EXPECT_EQ(cookieValue("", "hv_session"), "");
}

}  // namespace
}  // namespace hv::api
