// The JSON form of instances (docs/api.md): status → JSON text, and request
// bodies → spec fields, with strict checks (unknown fields and wrong types
// are errors that name the field). Pure; called on the control thread.
#pragma once

#include <boost/json/object.hpp>

#include "base/result.h"
#include "store/records.h"
#include "supervisor/supervisor.h"

namespace hv::api {

// Appends the instance as one JSON object to `out`. Written straight into
// the string (no DOM): the list of 1,000 instances is one reserved string.
void appendInstanceJson(std::string& out, const supervisor::InstanceStatus& status);
std::string instanceJson(const supervisor::InstanceStatus& status);

enum class BodyMode { kCreate, kPatch };

// Applies the fields present in `body` to `spec`. On create, `name` and
// `command` are required and `account` is allowed; on patch neither
// `name` nor `account` may appear. Also returns the `start` flag (create).
Status applyInstanceFields(const boost::json::object& body, BodyMode mode,
                           store::InstanceRecord& spec, bool* start);

}  // namespace hv::api
