#include "store/statement.h"

#include <sqlite3.h>

#include <utility>

namespace hv::store {

Error sqliteError(sqlite3* db, std::string_view what) {
  return Error::make(Errc::kInternal, std::string(what) + ": " + sqlite3_errmsg(db));
}

Result<Statement> Statement::prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return std::unexpected(sqliteError(db, "prepare"));
  }
  return Statement(db, stmt);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      lastCode_(other.lastCode_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    lastCode_ = other.lastCode_;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bindText(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8);
  if (rc != SQLITE_OK && lastCode_ == SQLITE_OK) lastCode_ = rc;
  return *this;
}

Statement& Statement::bindInt(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && lastCode_ == SQLITE_OK) lastCode_ = rc;
  return *this;
}

Result<bool> Statement::step() {
  if (lastCode_ != SQLITE_OK) {
    return fail(Errc::kInternal, std::string("bind: ") + sqlite3_errstr(lastCode_));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  lastCode_ = sqlite3_extended_errcode(db_);
  return std::unexpected(sqliteError(db_, "step"));
}

Status Statement::run() {
  auto row = step();
  if (!row) return std::unexpected(std::move(row.error()));
  if (*row) return fail(Errc::kInternal, "statement returned rows where none were expected");
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  lastCode_ = SQLITE_OK;
}

int64_t Statement::columnInt(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::columnText(int index) const {
  const auto* text = sqlite3_column_text(stmt_, index);
  if (text == nullptr) return {};
  int size = sqlite3_column_bytes(stmt_, index);
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

}  // namespace hv::store
