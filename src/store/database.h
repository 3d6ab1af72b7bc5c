// Database: the one SQLite connection of the daemon, in WAL mode, and the
// repositories for accounts and instances on top of it.
//
// Owns the sqlite3 handle. Every mutating call runs in one transaction, so a
// crash mid-write leaves the previous state. Not thread-safe: the daemon calls
// it only from its control thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/records.h"

struct sqlite3;

namespace hv::store {

class Statement;

class Database {
 public:
  // Opens (creating if needed) the database file at `path`, sets WAL,
  // foreign keys and a busy timeout, and applies pending migrations.
  static Result<std::unique_ptr<Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  int schemaVersion() const;

  // Accounts. insert fails with kConflict on a duplicate name.
  Status insertAccount(const AccountRecord& account);
  Status updateAccount(const AccountRecord& account);   // by name; kNotFound
  Status deleteAccount(const std::string& name);        // kNotFound; kConflict if it has instances
  Result<std::vector<AccountRecord>> listAccounts();
  Result<std::optional<AccountRecord>> findAccount(const std::string& name);

  // Instances. insert fails with kConflict on a duplicate name or port.
  Status insertInstance(const InstanceRecord& instance);
  Status updateInstance(const InstanceRecord& instance);  // every column, by name; kNotFound
  Status deleteInstance(const std::string& name);         // kNotFound
  Result<std::vector<InstanceRecord>> listInstances();    // ordered by name
  Result<std::optional<InstanceRecord>> findInstance(const std::string& name);

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it fails.
  template <class F>
  Status transaction(F&& body) {
    if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
    Status result = body();
    if (!result) {
      (void)exec("ROLLBACK");
      accounts_.reset();  // it may hold what was just rolled back
      return result;
    }
    return exec("COMMIT");
  }

  Status exec(const std::string& sql);

 private:
  explicit Database(sqlite3* db);
  Status migrate();

  sqlite3* db_;
  std::optional<std::vector<AccountRecord>> accounts_;  // listAccounts() cache
  // updateInstance's statement, prepared once: every start writes its pid
  // (parsing the UPDATE each time was ~10% of the daemon's CPU at boot).
  std::unique_ptr<Statement> updateInstance_;
};

}  // namespace hv::store
