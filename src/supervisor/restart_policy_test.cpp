#include "supervisor/restart_policy.h"

#include <gtest/gtest.h>

namespace hv::supervisor {
namespace {

using store::RestartMode;

struct Row {
  RestartMode mode;
  ExitInfo exit;
  int quickBefore;
  Action action;
  long long delayMs;
  int quickAfter;
};

ExitInfo code(int c, long long uptimeMs) { return ExitInfo{false, c, Millis(uptimeMs)}; }
ExitInfo signal(int s, long long uptimeMs) { return ExitInfo{true, s, Millis(uptimeMs)}; }

// A spawn that failed (uptime < 0) is a quick failure even with start_secs
// 0: restarting it at once would recurse into the failing spawn.
TEST(RestartPolicy, AFailedSpawnBacksOffEvenWithStartSecsZero) {
  RestartParams p;
  p.mode = RestartMode::kAlways;
  p.startSecs = Millis(0);
  Decision ran = decide(p, code(0, 0), 0, 0.5);
  EXPECT_EQ(ran.action, Action::kRestart);
  EXPECT_EQ(ran.delay.count(), 0) << "a process that ran restarts at once with start_secs 0";
  Decision first = decide(p, code(127, -1), 0, 0.5);
  EXPECT_EQ(first.action, Action::kRestart);
  EXPECT_EQ(first.delay.count(), 100);
  EXPECT_EQ(first.quickFailures, 1);
  Decision last = decide(p, code(127, -1), p.maxQuickFailures - 1, 0.5);
  EXPECT_EQ(last.action, Action::kFatal) << last.reason;
}

TEST(RestartPolicy, DecisionTable) {
  const Row rows[] = {
      // mode, exit, quick failures before → action, delay (jitter 0.5 = x1.0), after
      {RestartMode::kNever, code(1, 5000), 0, Action::kExited, 0, 0},
      {RestartMode::kNever, signal(9, 10), 3, Action::kExited, 0, 0},
      {RestartMode::kOnFailure, code(0, 10), 0, Action::kExited, 0, 0},
      {RestartMode::kOnFailure, code(2, 5000), 4, Action::kRestart, 0, 0},
      {RestartMode::kOnFailure, signal(9, 5000), 0, Action::kRestart, 0, 0},
      {RestartMode::kAlways, code(0, 5000), 0, Action::kRestart, 0, 0},
      {RestartMode::kAlways, code(0, 10), 0, Action::kRestart, 100, 1},
      {RestartMode::kOnFailure, code(1, 10), 1, Action::kRestart, 200, 2},
      {RestartMode::kOnFailure, code(1, 10), 3, Action::kRestart, 800, 4},
      {RestartMode::kOnFailure, code(1, 10), 4, Action::kFatal, 0, 5},
  };
  for (const Row& r : rows) {
    RestartParams p;
    p.mode = r.mode;
    Decision d = decide(p, r.exit, r.quickBefore, 0.5);
    EXPECT_EQ(d.action, r.action) << d.reason;
    EXPECT_EQ(d.delay.count(), r.delayMs) << d.reason;
    EXPECT_EQ(d.quickFailures, r.quickAfter) << d.reason;
  }
}

TEST(RestartPolicy, BackoffDoublesUpToTheCap) {
  RestartParams p;
  p.maxQuickFailures = 100;
  p.maxDelay = Millis(1000);
  long long last = 0;
  for (int before = 0; before < 20; ++before) {
    Decision d = decide(p, code(1, 1), before, 0.5);
    ASSERT_EQ(d.action, Action::kRestart);
    EXPECT_GE(d.delay.count(), last);
    EXPECT_LE(d.delay.count(), 1000);
    last = d.delay.count();
  }
  EXPECT_EQ(last, 1000);
}

TEST(RestartPolicy, JitterStaysWithinTwentyPercent) {
  RestartParams p;
  EXPECT_EQ(decide(p, code(1, 1), 0, 0.0).delay.count(), 80);
  EXPECT_EQ(decide(p, code(1, 1), 0, 0.999).delay.count(), 119);
}

TEST(RestartPolicy, ReasonsNameTheExitAndTheCrashLoop) {
  RestartParams p;
  EXPECT_EQ(decide(p, signal(9, 5000), 0, 0.5).reason, "killed by signal 9 (SIGKILL); restarting");
  Decision fatal = decide(p, code(3, 1), 4, 0.5);
  EXPECT_NE(fatal.reason.find("crash loop: 5 quick exits"), std::string::npos);
  EXPECT_NE(fatal.reason.find("exited with code 3"), std::string::npos);
  EXPECT_EQ(describeExit(ExitInfo{false, -1, Millis(0)}), "exited (status unknown)");
  EXPECT_EQ(describeExit(ExitInfo{true, 9, Millis(5), true}),
            "killed: out of memory (it went over its memory limit)");
}

}  // namespace
}  // namespace hv::supervisor
