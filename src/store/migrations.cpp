// The schema, as an append-only list of migrations. Migration N (1-based) takes
// a database from user_version N-1 to N. Never edit a migration that has
// shipped: add a new one at the end.
#include <array>
#include <string_view>

#include "store/database.h"
#include "store/statement.h"

namespace hv::store {
namespace {

constexpr std::string_view kMigration1 = R"sql(
CREATE TABLE accounts (
  name          TEXT PRIMARY KEY NOT NULL,
  user          TEXT NOT NULL,
  uid           INTEGER NOT NULL,
  gid           INTEGER NOT NULL,
  home          TEXT NOT NULL,
  max_instances INTEGER NOT NULL DEFAULT 0,
  token_hash    TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL
);
CREATE TABLE instances (
  name                TEXT PRIMARY KEY NOT NULL,
  account             TEXT NOT NULL REFERENCES accounts(name),
  command             TEXT NOT NULL,
  args                TEXT NOT NULL DEFAULT '[]',
  env                 TEXT NOT NULL DEFAULT '[]',
  cwd                 TEXT NOT NULL DEFAULT '',
  route               TEXT NOT NULL DEFAULT '',
  restart             TEXT NOT NULL CHECK (restart IN ('always', 'on-failure', 'never')),
  autostart           INTEGER NOT NULL,
  port                INTEGER NOT NULL UNIQUE,
  wanted              INTEGER NOT NULL,
  stop_signal         INTEGER NOT NULL,
  stop_grace_ms       INTEGER NOT NULL,
  start_secs          INTEGER NOT NULL,
  memory_bytes        INTEGER NOT NULL,
  cpu_percent         INTEGER NOT NULL,
  max_procs           INTEGER NOT NULL,
  created_at          INTEGER NOT NULL,
  last_pid            INTEGER NOT NULL DEFAULT 0,
  last_pid_start_time INTEGER NOT NULL DEFAULT 0
);
-- Deleting an account checks its instances through this index.
CREATE INDEX instances_by_account ON instances(account);
)sql";

// Readiness by port (issue 3) and restart counts that survive a daemon restart.
constexpr std::string_view kMigration2 = R"sql(
ALTER TABLE instances ADD COLUMN ready TEXT NOT NULL DEFAULT 'port'
  CHECK (ready IN ('port', 'start_secs'));
ALTER TABLE instances ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
)sql";

// Account quotas and the egress allowlist (issue 5).
constexpr std::string_view kMigration3 = R"sql(
ALTER TABLE accounts ADD COLUMN max_memory_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN max_cpu_percent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN max_procs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN max_open_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN egress TEXT NOT NULL DEFAULT '[]';
)sql";

// The front proxy's per-route settings (issue 4).
constexpr std::string_view kMigration4 = R"sql(
ALTER TABLE instances ADD COLUMN access TEXT NOT NULL DEFAULT '[]';
ALTER TABLE instances ADD COLUMN strip_prefix INTEGER NOT NULL DEFAULT 0;
)sql";

// Accounts own their domains (issue 17): each account starts with the hosts
// its instances already route, so no route is lost. And an alert webhook.
constexpr std::string_view kMigration5 = R"sql(
ALTER TABLE accounts ADD COLUMN domains TEXT NOT NULL DEFAULT '[]';
ALTER TABLE accounts ADD COLUMN webhook TEXT NOT NULL DEFAULT '';
UPDATE accounts SET domains = (
  SELECT json_group_array(DISTINCT lower(substr(route, 1, instr(route, '/') - 1)))
  FROM instances WHERE instances.account = accounts.name AND route != '' AND substr(route, 1, 1) != '/')
WHERE EXISTS (SELECT 1 FROM instances WHERE instances.account = accounts.name
              AND route != '' AND substr(route, 1, 1) != '/');
)sql";

constexpr std::array<std::string_view, 5> kMigrations = {kMigration1, kMigration2, kMigration3, kMigration4,
                                                         kMigration5};
constexpr int kLatestVersion = static_cast<int>(kMigrations.size());

Result<int> readUserVersion(sqlite3* db) {
  auto stmt = Statement::prepare(db, "PRAGMA user_version");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  auto row = stmt->step();
  if (!row) return std::unexpected(std::move(row.error()));
  if (!*row) return fail(Errc::kInternal, "PRAGMA user_version returned no row");
  return static_cast<int>(stmt->columnInt(0));
}

Error tooNew(int version) {
  return Error::make(Errc::kInternal,
                     "schema version " + std::to_string(version) +
                         " is newer than this hostvisor understands (" +
                         std::to_string(kLatestVersion) +
                         "); run a newer hostvisor or restore a backup");
}

}  // namespace

// One transaction per step: read the version, apply the next migration, bump
// the version. Reading inside BEGIN IMMEDIATE means two daemons starting at
// once cannot both apply the same migration.
Status Database::migrate() {
  for (bool current = false; !current;) {
    auto step = transaction([&]() -> Status {
      auto version = readUserVersion(db_);
      if (!version) return std::unexpected(std::move(version.error()));
      if (*version > kLatestVersion) return std::unexpected(tooNew(*version));
      current = *version == kLatestVersion;
      if (current) return {};
      if (auto s = exec(std::string(kMigrations[*version])); !s) {
        return std::unexpected(s.error().context("migration " + std::to_string(*version + 1)));
      }
      return exec("PRAGMA user_version = " + std::to_string(*version + 1));
    });
    if (!step) return step;
  }
  return {};
}

}  // namespace hv::store
