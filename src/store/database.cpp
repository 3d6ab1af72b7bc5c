// Database: opening the connection, its pragmas, and raw exec. The account and
// instance repositories live in account_repo.cpp and instance_repo.cpp; the
// schema in migrations.cpp.
#include "store/database.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include "base/unique_fd.h"
#include "store/statement.h"

namespace hv::store {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr const char* kPragmas =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA foreign_keys=ON;";

// Creates the file owner-only before SQLite sees it; SQLite would create it
// 0644 (less the umask), and gives its -wal and -shm files the main file's
// mode. O_CREAT without O_EXCL leaves an existing file's mode alone.
Status createOwnerOnly(const std::string& path) {
  if (path == ":memory:") return {};
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return failErrno("open", errno);
  return {};
}

}  // namespace

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  const std::string what = "open database " + path;
  if (path.empty()) return fail(Errc::kInvalidArgument, what + ": empty path");
  if (auto s = createOwnerOnly(path); !s) return std::unexpected(s.error().context(what));

  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  // Even a failed open may allocate a handle; the Database closes it.
  std::unique_ptr<Database> db(new Database(handle));
  if (rc != SQLITE_OK) {
    if (handle == nullptr) return fail(Errc::kInternal, what + ": out of memory");
    return std::unexpected(sqliteError(handle, what));
  }
  sqlite3_extended_result_codes(handle, 1);
  sqlite3_busy_timeout(handle, kBusyTimeoutMs);
  if (auto s = db->exec(kPragmas); !s) return std::unexpected(s.error().context(what));
  if (auto s = db->migrate(); !s) return std::unexpected(s.error().context(what));
  return db;
}

Database::Database(sqlite3* db) : db_(db) {}

// sqlite3_close_v2: the prepared statement kept (updateInstance_) is
// finalized right after, when the member goes; the handle closes then.
Database::~Database() { sqlite3_close_v2(db_); }

// -1 if the version cannot be read (it always can once open() succeeded).
int Database::schemaVersion() const {
  auto stmt = Statement::prepare(db_, "PRAGMA user_version");
  if (!stmt) return -1;
  auto row = stmt->step();
  if (!row || !*row) return -1;
  return static_cast<int>(stmt->columnInt(0));
}

Status Database::exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  // A COMMIT that fails (SQLITE_BUSY, disk full) leaves the transaction open,
  // and every later BEGIN would then fail; end it so the connection recovers.
  if (sql == "COMMIT" && !sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    accounts_.reset();
  }
  return fail(Errc::kInternal, "sqlite: " + text);
}

}  // namespace hv::store
