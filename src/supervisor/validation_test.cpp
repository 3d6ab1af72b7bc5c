#include "supervisor/validation.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace hv::supervisor {
namespace {

TEST(Validation, InstanceNames) {
  for (const char* ok : {"web", "a", "chat-1", "x_y", "0day"}) EXPECT_TRUE(validateName(ok)) << ok;
  for (const char* bad : {"", "Bad", "-x", "_x", "a/b", "a b", "a.b"})
    EXPECT_FALSE(validateName(bad)) << bad;
  EXPECT_TRUE(validateName(std::string(63, 'a')));
  EXPECT_FALSE(validateName(std::string(64, 'a')));
}

TEST(Validation, EnvNamesAndReservedPort) {
  EXPECT_TRUE(validateEnvName("NODE_ENV"));
  EXPECT_TRUE(validateEnvName("_x1"));
  EXPECT_FALSE(validateEnvName("1X"));
  EXPECT_FALSE(validateEnvName("A-B"));
  auto port = validateEnvName("PORT");
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message.find("reserved"), std::string::npos);
}

TEST(Validation, Routes) {
  for (const char* ok : {"", "/", "/ws/", "chat.example.com/ws/", "localhost/x", "*.example.com/"})
    EXPECT_TRUE(validateRoute(ok)) << ok;
  for (const char* bad : {"ws", "chat.example.com", "/a b", "/a/../b", "bad_host!/x", "/x?y", "h:99999/",
                          "chat.example.com:8080/ws/", "Chat.Example.com/ws/", "a..b/x", "*./x"})
    EXPECT_FALSE(validateRoute(bad)) << bad;
}

TEST(Validation, RoutesOverlap) {
  struct Row { const char* a; const char* b; bool overlap; } rows[] = {
      {"/vic/", "/vic/", true},
      {"/vic/", "/vic/admin/", true},
      {"/vic/", "localhost/vic/", true},
      {"vic.example.com/vic/", "*.example.com/", true},
      {"/vic/", "/vicious/", false},
      {"a.example.com/x/", "b.example.com/x/", false},
      {"/vic", "/vic/x", true},
      {"/", "/anything/", true},
  };
  for (const Row& r : rows) EXPECT_EQ(routesOverlap(r.a, r.b), r.overlap) << r.a << " ~ " << r.b;
}

class CommandValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hv-validation-XXXXXX";
    dir_ = mkdtemp(tmpl);
    account_.user = "someone";
    account_.uid = ::geteuid();
    account_.gid = ::getegid();
    account_.home = dir_;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n";
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::string dir_;
  store::AccountRecord account_;
};

TEST_F(CommandValidation, RejectsCommandsOutsideTheHomeEvenThroughSymlinks) {
  auto outside = validateCommand("/bin/true", account_);
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message.find("outside the home"), std::string::npos);
  std::string link = dir_ + "/escape";
  ASSERT_EQ(::symlink("/bin/true", link.c_str()), 0);
  auto viaLink = validateCommand(link, account_);
  ASSERT_FALSE(viaLink);
  EXPECT_NE(viaLink.error().message.find("a link to somewhere outside the home"), std::string::npos);
  // Attack: the message named where a link leads (another account's file).
  EXPECT_EQ(viaLink.error().message.find("/usr/bin/true"), std::string::npos) << viaLink.error().message;
  // And a path outside the home is refused by its spelling, before anything
  // is looked at: no "No such file" answer for /root/nonexistent.
  for (const std::string& probe : std::vector<std::string>{"/root/nonexistent", dir_ + "/../x", dir_ + "/a/./b"}) {
    auto refused = validateCommand(probe, account_);
    ASSERT_FALSE(refused) << probe;
    EXPECT_NE(refused.error().message.find("outside the home"), std::string::npos) << refused.error().message;
  }
  // A missing file is exec's to report, with its errno.
  EXPECT_TRUE(validateCommandPlace(dir_ + "/not-yet", account_));
}

TEST_F(CommandValidation, RejectsWritableOrForeignCommandsAndDirectories) {
  auto world = validateCommand(write("w.sh", 0777), account_);
  ASSERT_FALSE(world);
  EXPECT_NE(world.error().message.find("is world-writable (mode 0777); run: chmod 755"), std::string::npos);
  EXPECT_FALSE(validateCommand(write("g.sh", 0775), account_));

  ::mkdir((dir_ + "/open").c_str(), 0755);
  ::chmod((dir_ + "/open").c_str(), 0777);
  auto inOpenDir = validateCommand(write("open/x.sh", 0755), account_);
  ASSERT_FALSE(inOpenDir);
  EXPECT_NE(inOpenDir.error().message.find("directory " + dir_ + "/open above command"), std::string::npos);

  store::AccountRecord other = account_;
  other.uid = account_.uid + 4242;
  ::chmod(dir_.c_str(), 0755);  // the other user looks with its own eyes (as root too): let it in
  auto foreign = validateCommand(write("mine.sh", 0755), other);
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message.find("is owned by uid"), std::string::npos);
}

// Attack: a cwd outside the home (another account's directory) was accepted.
TEST_F(CommandValidation, WorkingDirectoryMustBeInsideTheHome) {
  EXPECT_TRUE(validateCwd(dir_, account_));
  ::mkdir((dir_ + "/work").c_str(), 0755);
  EXPECT_TRUE(validateCwd(dir_ + "/work", account_));
  for (const std::string& dir : std::vector<std::string>{"/tmp", "/home", dir_ + "/../", dir_ + "/work/.."}) {
    auto refused = validateCwd(dir, account_);
    ASSERT_FALSE(refused) << dir;
    EXPECT_NE(refused.error().message.find("outside the home"), std::string::npos) << refused.error().message;
  }
  ASSERT_EQ(::symlink("/tmp", (dir_ + "/out").c_str()), 0);
  EXPECT_FALSE(validateCwd(dir_ + "/out", account_));
}

TEST_F(CommandValidation, AcceptsAnExecutableFile) {
  EXPECT_TRUE(validateCommand(write("ok.sh", 0755), account_));
}

TEST_F(CommandValidation, RejectsWithAMessageThatSaysHowToFixIt) {
  auto relative = validateCommand("srv.sh", account_);
  ASSERT_FALSE(relative);
  EXPECT_NE(relative.error().message.find("not an absolute path"), std::string::npos);

  auto missing = validateCommandRunnable(dir_ + "/nope", account_);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);

  auto dir = validateCommandRunnable(dir_, account_);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("not a regular file"), std::string::npos);

  std::string path = write("plain.sh", 0644);
  auto plain = validateCommand(path, account_);
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, Errc::kInvalidArgument);
  EXPECT_NE(plain.error().message.find("chmod u+x " + path), std::string::npos);
}

TEST(Domains, AnAccountRoutesItsDomainsAndTheirSubdomainsOnly) {
  const std::vector<std::string> mine = {"shop.example.com", "*.blog.example.com"};
  struct Row { const char* host; bool allowed; } rows[] = {
      {"shop.example.com", true},   {"a.shop.example.com", true}, {"*.shop.example.com", true},
      {"example.com", false},       {"evilshop.example.com", false}, {"shop.example.com.evil", false},
      {"blog.example.com", false},  {"x.blog.example.com", true}, {"*.blog.example.com", true},
      {"other.example.com", false},
  };
  for (const Row& r : rows) EXPECT_EQ(hostInDomains(r.host, mine), r.allowed) << r.host;
  EXPECT_FALSE(hostInDomains("shop.example.com", {}));
  EXPECT_TRUE(validateDomain("shop.example.com"));
  EXPECT_TRUE(validateDomain("*.example.com"));
  EXPECT_FALSE(validateDomain("Shop.Example.com"));
  EXPECT_FALSE(validateDomain("shop.example.com:80"));
  EXPECT_FALSE(validateDomain(""));
}

}  // namespace
}  // namespace hv::supervisor
