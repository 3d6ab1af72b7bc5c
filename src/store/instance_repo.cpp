// Database: the instances table.
#include <sqlite3.h>

#include "store/database.h"
#include "store/json_columns.h"
#include "store/statement.h"

namespace hv::store {
namespace {

// Column order shared by the INSERT, UPDATE and SELECT below: ?N binds column N-1.
constexpr std::string_view kColumns =
    "name, account, command, args, env, cwd, route, restart, autostart, port, wanted,"
    " stop_signal, stop_grace_ms, start_secs, memory_bytes, cpu_percent, max_procs,"
    " created_at, last_pid, last_pid_start_time, ready, restarts, access, strip_prefix";

constexpr std::string_view kInsert =
    "INSERT INTO instances (name, account, command, args, env, cwd, route, restart,"
    " autostart, port, wanted, stop_signal, stop_grace_ms, start_secs, memory_bytes,"
    " cpu_percent, max_procs, created_at, last_pid, last_pid_start_time, ready, restarts, access,"
    " strip_prefix) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
    " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)";

constexpr std::string_view kUpdate =
    "UPDATE instances SET account = ?2, command = ?3, args = ?4, env = ?5, cwd = ?6,"
    " route = ?7, restart = ?8, autostart = ?9, port = ?10, wanted = ?11,"
    " stop_signal = ?12, stop_grace_ms = ?13, start_secs = ?14, memory_bytes = ?15,"
    " cpu_percent = ?16, max_procs = ?17, created_at = ?18, last_pid = ?19,"
    " last_pid_start_time = ?20, ready = ?21, restarts = ?22, access = ?23, strip_prefix = ?24"
    " WHERE name = ?1";

std::string_view restartName(RestartMode mode) {
  switch (mode) {
    case RestartMode::kAlways: return "always";
    case RestartMode::kOnFailure: return "on-failure";
    case RestartMode::kNever: return "never";
  }
  return "on-failure";
}

Result<RestartMode> parseRestart(const std::string& name) {
  if (name == "always") return RestartMode::kAlways;
  if (name == "on-failure") return RestartMode::kOnFailure;
  if (name == "never") return RestartMode::kNever;
  return fail(Errc::kInternal, "unknown restart mode '" + name + "'");
}

void bindInstance(Statement& stmt, const InstanceRecord& i) {
  stmt.bindText(1, i.name)
      .bindText(2, i.account)
      .bindText(3, i.command)
      .bindText(4, encodeArgs(i.args))
      .bindText(5, encodeEnv(i.env))
      .bindText(6, i.cwd)
      .bindText(7, i.route)
      .bindText(8, restartName(i.restart))
      .bindInt(9, i.autostart ? 1 : 0)
      .bindInt(10, i.port)
      .bindInt(11, i.wanted ? 1 : 0)
      .bindInt(12, i.stopSignal)
      .bindInt(13, i.stopGraceMs)
      .bindInt(14, i.startSecs)
      .bindInt(15, i.memoryBytes)
      .bindInt(16, i.cpuPercent)
      .bindInt(17, i.maxProcs)
      .bindInt(18, i.createdAt)
      .bindInt(19, i.lastPid)
      // SQLite integers are signed 64-bit; the cast round-trips every value.
      .bindInt(20, static_cast<int64_t>(i.lastPidStartTime))
      .bindText(21, i.ready == ReadyCheck::kPort ? "port" : "start_secs")
      .bindInt(22, i.restarts)
      .bindText(23, encodeArgs(i.access))
      .bindInt(24, i.stripPrefix ? 1 : 0);
}

// The columns that need decoding; a bad cell names the instance and column.
Status readDecoded(const Statement& stmt, InstanceRecord& i) {
  auto fault = [&](std::string_view column, Error e) {
    return std::unexpected(e.context("instance '" + i.name + "' column " + std::string(column)));
  };
  auto args = decodeArgs(stmt.columnText(3));
  if (!args) return fault("args", std::move(args.error()));
  auto env = decodeEnv(stmt.columnText(4));
  if (!env) return fault("env", std::move(env.error()));
  auto restart = parseRestart(stmt.columnText(7));
  if (!restart) return fault("restart", std::move(restart.error()));
  i.args = std::move(*args);
  i.env = std::move(*env);
  i.restart = *restart;
  return {};
}

Result<InstanceRecord> readInstance(const Statement& stmt) {
  InstanceRecord i;
  i.name = stmt.columnText(0);
  i.account = stmt.columnText(1);
  i.command = stmt.columnText(2);
  if (auto s = readDecoded(stmt, i); !s) return std::unexpected(std::move(s.error()));
  i.cwd = stmt.columnText(5);
  i.route = stmt.columnText(6);
  i.autostart = stmt.columnInt(8) != 0;
  i.port = static_cast<int>(stmt.columnInt(9));
  i.wanted = stmt.columnInt(10) != 0;
  i.stopSignal = static_cast<int>(stmt.columnInt(11));
  i.stopGraceMs = static_cast<int>(stmt.columnInt(12));
  i.startSecs = static_cast<int>(stmt.columnInt(13));
  i.memoryBytes = stmt.columnInt(14);
  i.cpuPercent = static_cast<int>(stmt.columnInt(15));
  i.maxProcs = static_cast<int>(stmt.columnInt(16));
  i.createdAt = stmt.columnInt(17);
  i.lastPid = static_cast<int>(stmt.columnInt(18));
  i.lastPidStartTime = static_cast<uint64_t>(stmt.columnInt(19));
  i.ready = stmt.columnText(20) == "start_secs" ? ReadyCheck::kStartSecs : ReadyCheck::kPort;
  i.restarts = static_cast<int>(stmt.columnInt(21));
  // A corrupt cell must not open a route to everyone: deny all instead.
  i.access = decodeArgs(stmt.columnText(22)).value_or(std::vector<std::string>{"deny all"});
  i.stripPrefix = stmt.columnInt(23) != 0;
  return i;
}

// Turns a failed INSERT or UPDATE into the error the caller can act on.
Error writeError(const Statement& stmt, const InstanceRecord& i, Error original) {
  switch (stmt.lastCode()) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Error::make(Errc::kConflict, "instance '" + i.name + "' already exists");
    case SQLITE_CONSTRAINT_UNIQUE:  // port is the only UNIQUE column
      return Error::make(Errc::kConflict,
                         "port " + std::to_string(i.port) + " is already assigned");
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Error::make(Errc::kNotFound, "no account named '" + i.account + "'");
    default:
      return original;
  }
}

Status write(Statement& stmt, const InstanceRecord& instance) {
  bindInstance(stmt, instance);
  if (auto s = stmt.run(); !s) {
    return std::unexpected(writeError(stmt, instance, std::move(s.error())));
  }
  return {};
}

}  // namespace

Status Database::insertInstance(const InstanceRecord& instance) {
  auto stmt = Statement::prepare(db_, kInsert);
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  return write(*stmt, instance);
}

Status Database::updateInstance(const InstanceRecord& instance) {
  if (!updateInstance_) {
    auto stmt = Statement::prepare(db_, kUpdate);
    if (!stmt) return std::unexpected(std::move(stmt.error()));
    updateInstance_ = std::make_unique<Statement>(std::move(*stmt));
  }
  Statement& stmt = *updateInstance_;
  stmt.reset();
  Status written = write(stmt, instance);
  stmt.reset();  // holds nothing between calls
  if (!written) return written;
  if (sqlite3_changes(db_) == 0) {
    return fail(Errc::kNotFound, "no instance named '" + instance.name + "'");
  }
  return {};
}

Status Database::deleteInstance(const std::string& name) {
  auto stmt = Statement::prepare(db_, "DELETE FROM instances WHERE name = ?1");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  stmt->bindText(1, name);
  if (auto s = stmt->run(); !s) return s;
  if (sqlite3_changes(db_) == 0) return fail(Errc::kNotFound, "no instance named '" + name + "'");
  return {};
}

Result<std::vector<InstanceRecord>> Database::listInstances() {
  auto stmt = Statement::prepare(
      db_, "SELECT " + std::string(kColumns) + " FROM instances ORDER BY name");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  std::vector<InstanceRecord> instances;
  for (;;) {
    auto row = stmt->step();
    if (!row) return std::unexpected(std::move(row.error()));
    if (!*row) return instances;
    auto instance = readInstance(*stmt);
    if (!instance) return std::unexpected(std::move(instance.error()));
    instances.push_back(std::move(*instance));
  }
}

Result<std::optional<InstanceRecord>> Database::findInstance(const std::string& name) {
  auto stmt = Statement::prepare(
      db_, "SELECT " + std::string(kColumns) + " FROM instances WHERE name = ?1");
  if (!stmt) return std::unexpected(std::move(stmt.error()));
  stmt->bindText(1, name);
  auto row = stmt->step();
  if (!row) return std::unexpected(std::move(row.error()));
  if (!*row) return std::optional<InstanceRecord>();
  auto instance = readInstance(*stmt);
  if (!instance) return std::unexpected(std::move(instance.error()));
  return std::optional<InstanceRecord>(std::move(*instance));
}

}  // namespace hv::store
