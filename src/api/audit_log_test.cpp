#include "api/audit_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hv::api {
namespace {

namespace fs = std::filesystem;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hv-audit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string read(const std::string& name) {
    std::ifstream f(dir + "/" + name);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::string dir;
};

// Attack: a refused create with a 900 KB command wrote 900 KB to audit.log
// (18 MB in 0.8 s). One line now holds at most a few KB, whatever was sent.
TEST_F(AuditLogTest, OneLineIsBoundedWhateverTheRequestHeld) {
  auto log = AuditLog::open(dir + "/audit.log");
  ASSERT_TRUE(log);
  const std::string huge(900 * 1024, 'A');
  log->record("uid 1001", "instance.create", huge, fail(Errc::kInvalidArgument, "command '" + huge + "' is bad"));
  const std::string text = read("audit.log");
  EXPECT_LT(text.size(), 4 * AuditLog::kFieldBytes);
  const auto line = boost::json::parse(text).as_object();
  EXPECT_NE(std::string(line.at("target").as_string()).find("more bytes)"), std::string::npos);
  EXPECT_EQ(line.at("ok"), false);
}

TEST_F(AuditLogTest, RotatesPastItsSizeAndKeepsAFewOldFiles) {
  auto log = AuditLog::open(dir + "/audit.log", 4096);
  ASSERT_TRUE(log);
  for (int i = 0; i < 400; ++i) log->record("admin token", "instance.start", "web" + std::to_string(i), {});
  EXPECT_LE(fs::file_size(dir + "/audit.log"), 4096u);
  EXPECT_TRUE(fs::exists(dir + "/audit.log.1"));
  EXPECT_TRUE(fs::exists(dir + "/audit.log." + std::to_string(AuditLog::kKeep)));
  EXPECT_FALSE(fs::exists(dir + "/audit.log." + std::to_string(AuditLog::kKeep + 1)));
  EXPECT_NE(read("audit.log").find("\"web399\""), std::string::npos);  // the newest line is in the live file
  EXPECT_EQ(fs::status(dir + "/audit.log").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace
}  // namespace hv::api
