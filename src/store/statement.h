// Statement: RAII owner of one prepared sqlite3_stmt (private to src/store).
//
// Binds are 1-based, columns 0-based, as in the SQLite C API. A bind failure is
// remembered and reported by the next step(), so call sites can bind in a row
// and check once. Text is bound SQLITE_TRANSIENT (copied), so arguments need
// not outlive the call. Move-only; used only from the Database's thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hv::store {

// An Errc::kInternal error carrying sqlite3_errmsg(db), prefixed by `what`.
Error sqliteError(sqlite3* db, std::string_view what);

class Statement {
 public:
  static Result<Statement> prepare(sqlite3* db, std::string_view sql);
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& bindText(int index, std::string_view text);
  Statement& bindInt(int index, int64_t value);

  // true: a row is ready to read; false: the statement is done.
  Result<bool> step();
  // Steps a statement that returns no rows (INSERT, UPDATE, DELETE).
  Status run();
  // Back to before its first step, bindings and lastCode() cleared: a
  // statement prepared once can be run again.
  void reset();

  // The extended result code of the last failed bind or step (SQLITE_OK if
  // none), e.g. SQLITE_CONSTRAINT_UNIQUE, so callers can name the conflict.
  int lastCode() const { return lastCode_; }

  int64_t columnInt(int index) const;
  std::string columnText(int index) const;  // NULL reads as ""

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int lastCode_ = 0;  // SQLITE_OK
};

}  // namespace hv::store
