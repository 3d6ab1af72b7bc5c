// Database: the accounts table.
#include <sqlite3.h>

#include "store/database.h"
#include "store/json_columns.h"
#include "store/statement.h"

namespace hv::store {
namespace {

constexpr std::string_view kSelectColumns =
    "SELECT name, user, uid, gid, home, max_instances, token_hash, created_at, max_memory_bytes,"
    " max_cpu_percent, max_procs, max_open_files, egress, domains, webhook FROM accounts";

// ?1 is the name in both INSERT and UPDATE, so one binder serves both.
void bindAccount(Statement& stmt, const AccountRecord& a) {
  stmt.bindText(1, a.name)
      .bindText(2, a.user)
      .bindInt(3, a.uid)
      .bindInt(4, a.gid)
      .bindText(5, a.home)
      .bindInt(6, a.maxInstances)
      .bindText(7, a.tokenHash)
      .bindInt(8, a.createdAt)
      .bindInt(9, a.maxMemoryBytes)
      .bindInt(10, a.maxCpuPercent)
      .bindInt(11, a.maxProcs)
      .bindInt(12, a.maxOpenFiles)
      .bindText(13, encodeArgs(a.egress))
      .bindText(14, encodeArgs(a.domains))
      .bindText(15, a.webhook);
}

AccountRecord readAccount(const Statement& stmt) {
  AccountRecord a;
  a.name = stmt.columnText(0);
  a.user = stmt.columnText(1);
  a.uid = static_cast<uint32_t>(stmt.columnInt(2));
  a.gid = static_cast<uint32_t>(stmt.columnInt(3));
  a.home = stmt.columnText(4);
  a.maxInstances = static_cast<int>(stmt.columnInt(5));
  a.tokenHash = stmt.columnText(6);
  a.createdAt = stmt.columnInt(7);
  a.maxMemoryBytes = stmt.columnInt(8);
  a.maxCpuPercent = static_cast<int>(stmt.columnInt(9));
  a.maxProcs = static_cast<int>(stmt.columnInt(10));
  a.maxOpenFiles = static_cast<int>(stmt.columnInt(11));
  // A corrupt cell loses the allowlist (deny all), never widens it.
  a.egress = decodeArgs(stmt.columnText(12)).value_or(std::vector<std::string>{});
  // Likewise: a corrupt cell routes no host.
  a.domains = decodeArgs(stmt.columnText(13)).value_or(std::vector<std::string>{});
  a.webhook = stmt.columnText(14);
  return a;
}

Result<std::vector<AccountRecord>> readAccounts(Statement& stmt) {
  std::vector<AccountRecord> accounts;
  for (;;) {
    auto row = stmt.step();
    if (!row) return std::unexpected(std::move(row.error()));
    if (!*row) return accounts;
    accounts.push_back(readAccount(stmt));
  }
}

Error notFound(const std::string& name) {
  return Error::make(Errc::kNotFound, "no account named '" + name + "'");
}

// Names the account's remaining instances when a delete is refused.
Error stillHasInstances(sqlite3* db, const std::string& name) {
  std::string count = "instances";
  auto stmt = Statement::prepare(db, "SELECT COUNT(*) FROM instances WHERE account = ?1");
  if (stmt) {
    stmt->bindText(1, name);
    if (auto row = stmt->step(); row && *row) {
      int64_t n = stmt->columnInt(0);
      count = std::to_string(n) + (n == 1 ? " instance" : " instances");
    }
  }
  return Error::make(Errc::kConflict, "account '" + name + "' still has " + count +
                                          "; delete them first");
}

}  // namespace

Status Database::insertAccount(const AccountRecord& account) {
  accounts_.reset();  // whatever happens, the next read asks SQLite
  auto stmt = Statement::prepare(
      db_,
      "INSERT INTO accounts (name, user, uid, gid, home, max_instances, token_hash, created_at,"
      " max_memory_bytes, max_cpu_percent, max_procs, max_open_files, egress, domains, webhook)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  bindAccount(*stmt, account);
  auto s = stmt->run();
  if (!s && stmt->lastCode() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return fail(Errc::kConflict, "account '" + account.name + "' already exists");
  }
  return s;
}

Status Database::updateAccount(const AccountRecord& account) {
  accounts_.reset();  // whatever happens, the next read asks SQLite
  auto stmt = Statement::prepare(
      db_,
      "UPDATE accounts SET user = ?2, uid = ?3, gid = ?4, home = ?5, max_instances = ?6,"
      " token_hash = ?7, created_at = ?8, max_memory_bytes = ?9, max_cpu_percent = ?10,"
      " max_procs = ?11, max_open_files = ?12, egress = ?13, domains = ?14, webhook = ?15 WHERE name = ?1");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  bindAccount(*stmt, account);
  if (auto s = stmt->run(); !s) return s;
  if (sqlite3_changes(db_) == 0) return std::unexpected(notFound(account.name));
  return {};
}

// One statement: the foreign key on instances.account refuses the delete
// while the account still has instances.
Status Database::deleteAccount(const std::string& name) {
  accounts_.reset();  // whatever happens, the next read asks SQLite
  auto stmt = Statement::prepare(db_, "DELETE FROM accounts WHERE name = ?1");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  stmt->bindText(1, name);
  auto s = stmt->run();
  if (!s && stmt->lastCode() == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return std::unexpected(stillHasInstances(db_, name));
  }
  if (!s) return s;
  if (sqlite3_changes(db_) == 0) return std::unexpected(notFound(name));
  return {};
}

// Accounts change rarely and are read on every start of an instance: they
// are served from a copy that every write above drops.
Result<std::vector<AccountRecord>> Database::listAccounts() {
  if (!accounts_) {
    auto stmt = Statement::prepare(db_, std::string(kSelectColumns) + " ORDER BY name");
    if (!stmt) return std::unexpected(std::move(stmt.error()));
    auto rows = readAccounts(*stmt);
    if (!rows) return rows;
    accounts_ = std::move(*rows);
  }
  return *accounts_;
}

Result<std::optional<AccountRecord>> Database::findAccount(const std::string& name) {
  if (!accounts_) {
    if (auto all = listAccounts(); !all) return std::unexpected(std::move(all.error()));
  }
  for (const auto& a : *accounts_) {
    if (a.name == name) return std::optional<AccountRecord>(a);
  }
  return std::optional<AccountRecord>();
}

}  // namespace hv::store
