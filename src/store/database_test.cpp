#include "store/database.h"

#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

namespace hv::store {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "hv_store_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/hostvisor.db";
    db_ = openDb();
    ASSERT_NE(db_, nullptr);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Database> openDb() {
    auto db = Database::open(path_);
    EXPECT_TRUE(db.has_value()) << db.error().message;
    return db ? std::move(*db) : nullptr;
  }

  static AccountRecord account(std::string name) {
    AccountRecord a;
    a.name = std::move(name);
    a.user = "hv-" + a.name;
    a.uid = 2001;
    a.gid = 2002;
    a.home = "/home/" + a.name;
    a.maxInstances = 5;
    a.tokenHash = std::string(64, 'a');
    a.createdAt = 1700000000;
    return a;
  }

  static InstanceRecord instance(std::string name, int port, std::string owner = "alice") {
    InstanceRecord i;
    i.name = std::move(name);
    i.account = std::move(owner);
    i.command = "/usr/bin/python3";
    i.args = {"-m", "http.server", "{port}"};
    i.env = {{"PORT", "{port}"}};
    i.port = port;
    i.createdAt = 1700000100;
    return i;
  }

  // Every field set to something other than its default.
  static InstanceRecord fullInstance() {
    InstanceRecord i = instance("web-1", 20001);
    i.args = {"say \"hi\"", "back\\slash", "", "żółw 🐢 日本", "line\nbreak\ttab", "\xff\xfe raw"};
    i.env = {{"QUOTE", "\"'"}, {"EMPTY", ""}, {"", "no name"}, {"UNI", "ñ€𝄞"}, {"A", "b=c"}};
    i.cwd = "/srv/web";
    i.route = "example.com/app";
    i.restart = RestartMode::kAlways;
    i.autostart = false;
    i.wanted = false;
    i.stopSignal = 2;
    i.stopGraceMs = 2500;
    i.startSecs = 7;
    i.memoryBytes = int64_t{3} << 40;
    i.cpuPercent = 150;
    i.maxProcs = 64;
    i.createdAt = 1712345678;
    i.lastPid = 4321;
    i.lastPidStartTime = std::numeric_limits<uint64_t>::max() - 5;
    return i;
  }

  static void expectSame(const AccountRecord& a, const AccountRecord& b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.user, b.user);
    EXPECT_EQ(a.uid, b.uid);
    EXPECT_EQ(a.gid, b.gid);
    EXPECT_EQ(a.home, b.home);
    EXPECT_EQ(a.maxInstances, b.maxInstances);
    EXPECT_EQ(a.tokenHash, b.tokenHash);
    EXPECT_EQ(a.createdAt, b.createdAt);
  }

  static void expectSame(const InstanceRecord& a, const InstanceRecord& b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.account, b.account);
    EXPECT_EQ(a.command, b.command);
    EXPECT_EQ(a.args, b.args);
    EXPECT_EQ(a.env, b.env);
    EXPECT_EQ(a.cwd, b.cwd);
    EXPECT_EQ(a.route, b.route);
    EXPECT_EQ(a.restart, b.restart);
    EXPECT_EQ(a.autostart, b.autostart);
    EXPECT_EQ(a.port, b.port);
    EXPECT_EQ(a.wanted, b.wanted);
    EXPECT_EQ(a.stopSignal, b.stopSignal);
    EXPECT_EQ(a.stopGraceMs, b.stopGraceMs);
    EXPECT_EQ(a.startSecs, b.startSecs);
    EXPECT_EQ(a.memoryBytes, b.memoryBytes);
    EXPECT_EQ(a.cpuPercent, b.cpuPercent);
    EXPECT_EQ(a.maxProcs, b.maxProcs);
    EXPECT_EQ(a.createdAt, b.createdAt);
    EXPECT_EQ(a.lastPid, b.lastPid);
    EXPECT_EQ(a.lastPidStartTime, b.lastPidStartTime);
  }

  InstanceRecord mustFind(const std::string& name) {
    auto found = db_->findInstance(name);
    EXPECT_TRUE(found.has_value()) << found.error().message;
    EXPECT_TRUE(found && found->has_value()) << name;
    return found && *found ? **found : InstanceRecord{};
  }

  void addAlice() { ASSERT_TRUE(db_->insertAccount(account("alice"))); }

  std::string dir_;
  std::string path_;
  std::unique_ptr<Database> db_;
};

TEST_F(DatabaseTest, AccountRoundTripsEveryField) {
  AccountRecord a = account("alice");
  a.uid = 4000000000u;  // above INT32_MAX
  ASSERT_TRUE(db_->insertAccount(a));
  auto found = db_->findAccount("alice");
  ASSERT_TRUE(found && *found);
  expectSame(**found, a);
}

// Accounts are served from a cache: every write must show in the next read.
TEST_F(DatabaseTest, AccountReadsSeeEveryWrite) {
  ASSERT_TRUE(db_->insertAccount(account("alice")));
  ASSERT_EQ(db_->listAccounts()->size(), 1u);  // fills the cache
  ASSERT_TRUE(db_->insertAccount(account("bob")));
  EXPECT_EQ(db_->listAccounts()->size(), 2u);
  AccountRecord changed = account("bob");
  changed.maxInstances = 7;
  ASSERT_TRUE(db_->updateAccount(changed));
  EXPECT_EQ((*db_->findAccount("bob"))->maxInstances, 7);
  ASSERT_TRUE(db_->deleteAccount("bob"));
  EXPECT_FALSE(*db_->findAccount("bob"));
  EXPECT_EQ(db_->listAccounts()->size(), 1u);
}

TEST_F(DatabaseTest, InstanceRoundTripsEveryField) {
  addAlice();
  InstanceRecord i = fullInstance();
  ASSERT_TRUE(db_->insertInstance(i));
  expectSame(mustFind("web-1"), i);
}

TEST_F(DatabaseTest, InstanceWithEmptyArgsAndEnvRoundTrips) {
  addAlice();
  InstanceRecord i = instance("bare", 20002);
  i.args.clear();
  i.env.clear();
  i.restart = RestartMode::kNever;
  ASSERT_TRUE(db_->insertInstance(i));
  expectSame(mustFind("bare"), i);
}

TEST_F(DatabaseTest, EveryRestartModeRoundTrips) {
  addAlice();
  int port = 20100;
  for (RestartMode mode : {RestartMode::kAlways, RestartMode::kOnFailure, RestartMode::kNever}) {
    InstanceRecord i = instance("r" + std::to_string(port), port);
    i.restart = mode;
    ASSERT_TRUE(db_->insertInstance(i));
    EXPECT_EQ(mustFind(i.name).restart, mode);
    ++port;
  }
}

TEST_F(DatabaseTest, FindUnknownReturnsNothing) {
  auto account = db_->findAccount("nobody");
  ASSERT_TRUE(account);
  EXPECT_FALSE(account->has_value());
  auto found = db_->findInstance("nothing");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST_F(DatabaseTest, DuplicateAccountNameIsConflict) {
  addAlice();
  auto s = db_->insertAccount(account("alice"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_EQ(s.error().message, "account 'alice' already exists");
}

TEST_F(DatabaseTest, DuplicateInstanceNameIsConflict) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  auto s = db_->insertInstance(instance("web", 20002));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_EQ(s.error().message, "instance 'web' already exists");
  EXPECT_EQ(mustFind("web").port, 20001);
}

TEST_F(DatabaseTest, DuplicatePortIsConflictAndLeavesOriginalUntouched) {
  addAlice();
  InstanceRecord original = fullInstance();
  ASSERT_TRUE(db_->insertInstance(original));
  auto s = db_->insertInstance(instance("api", original.port));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_EQ(s.error().message, "port 20001 is already assigned");
  expectSame(mustFind(original.name), original);
  auto missing = db_->findInstance("api");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_F(DatabaseTest, UpdateToTakenPortIsConflictAndChangesNothing) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("a", 20001)));
  InstanceRecord b = instance("b", 20002);
  ASSERT_TRUE(db_->insertInstance(b));
  InstanceRecord moved = b;
  moved.port = 20001;
  moved.command = "/bin/changed";
  auto s = db_->updateInstance(moved);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_EQ(s.error().message, "port 20001 is already assigned");
  expectSame(mustFind("b"), b);
  // The statement is kept between calls: the failure leaves nothing behind.
  moved.port = 20003;
  ASSERT_TRUE(db_->updateInstance(moved));
  expectSame(mustFind("b"), moved);
  expectSame(mustFind("a"), instance("a", 20001));
}

TEST_F(DatabaseTest, UpdateInstanceRewritesEveryColumn) {
  addAlice();
  ASSERT_TRUE(db_->insertAccount(account("bob")));
  ASSERT_TRUE(db_->insertInstance(instance("web-1", 20050)));
  InstanceRecord changed = fullInstance();
  changed.account = "bob";
  ASSERT_TRUE(db_->updateInstance(changed));
  expectSame(mustFind("web-1"), changed);
}

TEST_F(DatabaseTest, UpdateAccountRewritesEveryColumn) {
  addAlice();
  AccountRecord changed = account("alice");
  changed.user = "other";
  changed.uid = 3001;
  changed.gid = 3002;
  changed.home = "/srv/alice";
  changed.maxInstances = 0;
  changed.tokenHash = "";
  changed.createdAt = 1800000000;
  ASSERT_TRUE(db_->updateAccount(changed));
  auto found = db_->findAccount("alice");
  ASSERT_TRUE(found && *found);
  expectSame(**found, changed);
}

TEST_F(DatabaseTest, UpdateUnknownIsNotFound) {
  auto a = db_->updateAccount(account("ghost"));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::kNotFound);
  EXPECT_EQ(a.error().message, "no account named 'ghost'");
  addAlice();
  auto i = db_->updateInstance(instance("web", 20001));
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code, Errc::kNotFound);
  EXPECT_EQ(i.error().message, "no instance named 'web'");
}

TEST_F(DatabaseTest, DeleteUnknownIsNotFound) {
  auto a = db_->deleteAccount("ghost");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::kNotFound);
  auto i = db_->deleteInstance("web");
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code, Errc::kNotFound);
  EXPECT_EQ(i.error().message, "no instance named 'web'");
}

TEST_F(DatabaseTest, DeleteRemovesTheRow) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  ASSERT_TRUE(db_->deleteInstance("web"));
  ASSERT_TRUE(db_->deleteAccount("alice"));
  EXPECT_TRUE(db_->listInstances()->empty());
  EXPECT_TRUE(db_->listAccounts()->empty());
}

TEST_F(DatabaseTest, DeleteAccountWithInstancesIsConflict) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  ASSERT_TRUE(db_->insertInstance(instance("api", 20002)));
  auto s = db_->deleteAccount("alice");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_NE(s.error().message.find("'alice' still has 2 instances"), std::string::npos)
      << s.error().message;
  auto found = db_->findAccount("alice");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ(db_->listInstances()->size(), 2u);
}

TEST_F(DatabaseTest, InstanceOfUnknownAccountIsNotFound) {
  auto s = db_->insertInstance(instance("web", 20001, "nobody"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kNotFound);
  EXPECT_EQ(s.error().message, "no account named 'nobody'");
}

TEST_F(DatabaseTest, ListsAreOrderedByName) {
  ASSERT_TRUE(db_->insertAccount(account("zed")));
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20003)));
  ASSERT_TRUE(db_->insertInstance(instance("api", 20001)));
  ASSERT_TRUE(db_->insertInstance(instance("mail", 20002, "zed")));
  auto instances = db_->listInstances();
  ASSERT_TRUE(instances);
  ASSERT_EQ(instances->size(), 3u);
  EXPECT_EQ((*instances)[0].name, "api");
  EXPECT_EQ((*instances)[1].name, "mail");
  EXPECT_EQ((*instances)[2].name, "web");
  auto accounts = db_->listAccounts();
  ASSERT_TRUE(accounts);
  ASSERT_EQ(accounts->size(), 2u);
  EXPECT_EQ((*accounts)[0].name, "alice");
  EXPECT_EQ((*accounts)[1].name, "zed");
}

TEST_F(DatabaseTest, ReopenKeepsDataAndSchemaVersion) {
  EXPECT_EQ(db_->schemaVersion(), 5);
  addAlice();
  InstanceRecord i = fullInstance();
  ASSERT_TRUE(db_->insertInstance(i));
  db_.reset();
  db_ = openDb();
  ASSERT_NE(db_, nullptr);
  EXPECT_EQ(db_->schemaVersion(), 5);
  expectSame(mustFind(i.name), i);
}

TEST_F(DatabaseTest, FutureSchemaVersionFailsOpen) {
  ASSERT_TRUE(db_->exec("PRAGMA user_version = 99"));
  db_.reset();
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Errc::kInternal);
  EXPECT_NE(db.error().message.find("schema version 99 is newer"), std::string::npos)
      << db.error().message;
}

TEST_F(DatabaseTest, DatabaseFileIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DatabaseTest, WritesGoThroughAnOwnerOnlyWriteAheadLog) {
  addAlice();
  struct stat st {};
  ASSERT_EQ(::stat((path_ + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DatabaseTest, OpenInMissingDirectoryFailsWithPath) {
  std::string bad = dir_ + "/missing/hostvisor.db";
  auto db = Database::open(bad);
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message.find(bad), std::string::npos) << db.error().message;
}

TEST_F(DatabaseTest, OpenNonDatabaseFileFails) {
  std::string junk = dir_ + "/junk.db";
  {
    std::FILE* f = std::fopen(junk.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not an sqlite database, just some text padding it out.....\n", f);
    std::fclose(f);
  }
  auto db = Database::open(junk);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Errc::kInternal);
}

TEST_F(DatabaseTest, FailedTransactionLeavesNothingWritten) {
  auto s = db_->transaction([&]() -> Status {
    if (auto r = db_->insertAccount(account("alice")); !r) return r;
    if (auto r = db_->insertInstance(instance("web", 20001)); !r) return r;
    return db_->insertInstance(instance("api", 20001));  // port taken: fails
  });
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kConflict);
  EXPECT_TRUE(db_->listAccounts()->empty());
  EXPECT_TRUE(db_->listInstances()->empty());
  // The connection is usable afterwards.
  addAlice();
}

TEST_F(DatabaseTest, SuccessfulTransactionCommitsEverything) {
  auto s = db_->transaction([&]() -> Status {
    if (auto r = db_->insertAccount(account("alice")); !r) return r;
    return db_->insertInstance(instance("web", 20001));
  });
  ASSERT_TRUE(s) << s.error().message;
  db_.reset();
  db_ = openDb();
  ASSERT_NE(db_, nullptr);
  EXPECT_EQ(db_->listInstances()->size(), 1u);
}

TEST_F(DatabaseTest, CorruptArgsCellIsAnErrorNotACrash) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  for (const char* bad : {"[1,", "{\"a\":1}", "[1]", "", "[\"ok\", null]"}) {
    ASSERT_TRUE(db_->exec(std::string("UPDATE instances SET args = '") + bad + "'"));
    auto found = db_->findInstance("web");
    ASSERT_FALSE(found) << bad;
    EXPECT_EQ(found.error().code, Errc::kInternal);
    EXPECT_NE(found.error().message.find("instance 'web' column args"), std::string::npos)
        << found.error().message;
    EXPECT_FALSE(db_->listInstances());
  }
}

TEST_F(DatabaseTest, CorruptEnvCellIsAnErrorNotACrash) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  for (const char* bad : {"[[\"A\"]]", "[[\"A\",\"b\",\"c\"]]", "[[\"A\",1]]", "[\"A=b\"]", "nope"}) {
    ASSERT_TRUE(db_->exec(std::string("UPDATE instances SET env = '") + bad + "'"));
    auto found = db_->findInstance("web");
    ASSERT_FALSE(found) << bad;
    EXPECT_NE(found.error().message.find("column env"), std::string::npos)
        << found.error().message;
  }
}

TEST_F(DatabaseTest, AccountQuotasAndEgressRoundTrip) {
  AccountRecord a = account("quota");
  a.maxMemoryBytes = 1LL << 30;
  a.maxCpuPercent = 150;
  a.maxProcs = 64;
  a.maxOpenFiles = 4096;
  a.egress = {"127.0.0.1/32:5432", "::1/128:0"};
  ASSERT_TRUE(db_->insertAccount(a));
  auto found = db_->findAccount("quota");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->maxMemoryBytes, 1LL << 30);
  EXPECT_EQ((*found)->maxCpuPercent, 150);
  EXPECT_EQ((*found)->maxProcs, 64);
  EXPECT_EQ((*found)->maxOpenFiles, 4096);
  EXPECT_EQ((*found)->egress, a.egress);
}

TEST_F(DatabaseTest, ReadinessAndRestartCountRoundTrip) {
  addAlice();
  InstanceRecord i = instance("web", 20001);
  i.ready = ReadyCheck::kStartSecs;
  i.restarts = 7;
  i.access = {"allow 10.0.0.0/8", "deny all"};
  i.stripPrefix = true;
  ASSERT_TRUE(db_->insertInstance(i));
  auto found = db_->findInstance("web");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->ready, ReadyCheck::kStartSecs);
  EXPECT_EQ((*found)->restarts, 7);
  EXPECT_EQ((*found)->access, i.access);
  EXPECT_TRUE((*found)->stripPrefix);
}

TEST_F(DatabaseTest, VersionOneDatabaseMigratesKeepingItsRows) {
  addAlice();
  ASSERT_TRUE(db_->insertInstance(instance("web", 20001)));
  // Take the file back to schema 1, as an older hostvisor left it.
  ASSERT_TRUE(db_->exec("ALTER TABLE instances DROP COLUMN ready"));
  ASSERT_TRUE(db_->exec("ALTER TABLE instances DROP COLUMN restarts"));
  ASSERT_TRUE(db_->exec("ALTER TABLE instances DROP COLUMN access"));
  ASSERT_TRUE(db_->exec("ALTER TABLE instances DROP COLUMN strip_prefix"));
  for (const char* column : {"max_memory_bytes", "max_cpu_percent", "max_procs", "max_open_files", "egress", "domains", "webhook"})
    ASSERT_TRUE(db_->exec(std::string("ALTER TABLE accounts DROP COLUMN ") + column));
  ASSERT_TRUE(db_->exec("PRAGMA user_version = 1"));
  db_.reset();
  db_ = openDb();
  ASSERT_NE(db_, nullptr);
  EXPECT_EQ(db_->schemaVersion(), 5);
  auto found = db_->findInstance("web");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->port, 20001);
  EXPECT_EQ((*found)->ready, ReadyCheck::kPort);
  EXPECT_EQ((*found)->restarts, 0);
}

// Accounts own their domains (schema 5): each starts with the hosts its
// instances already route, so the upgrade loses no route.
TEST_F(DatabaseTest, VersionFourAccountsGetTheHostsTheyAlreadyRoute) {
  addAlice();
  auto routed = [&](const char* name, int port, const char* route) {
    InstanceRecord i = instance(name, port);
    i.route = route;
    ASSERT_TRUE(db_->insertInstance(i));
  };
  routed("shop", 20001, "Shop.Example.com/");
  routed("api", 20002, "shop.example.com/api/");
  routed("blog", 20003, "*.blog.example.com/x/");
  routed("any", 20004, "/ws/");
  ASSERT_TRUE(db_->exec("ALTER TABLE accounts DROP COLUMN domains"));
  ASSERT_TRUE(db_->exec("ALTER TABLE accounts DROP COLUMN webhook"));
  ASSERT_TRUE(db_->exec("PRAGMA user_version = 4"));
  db_.reset();
  db_ = openDb();
  ASSERT_NE(db_, nullptr);
  auto alice = db_->findAccount("alice");
  ASSERT_TRUE(alice && *alice);
  auto domains = (*alice)->domains;
  std::sort(domains.begin(), domains.end());
  EXPECT_EQ(domains, (std::vector<std::string>{"*.blog.example.com", "shop.example.com"}));
}

TEST_F(DatabaseTest, InMemoryDatabaseOpens) {
  auto db = Database::open(":memory:");
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ((*db)->schemaVersion(), 5);
  EXPECT_FALSE(std::filesystem::exists(":memory:"));
}

}  // namespace
}  // namespace hv::store
