// The chat's wire protocol: JSON text frames, one object per WebSocket message.
//
//   client → server   {"type":"hello","name":"ann"}   once, first
//                     {"type":"say","text":"hi"}
//   server → client   {"type":"welcome","users":[...],"history":[message...]}  on connect
//                     {"type":"join"|"leave","name":"ann"}
//                     {"type":"message","name":"ann","text":"hi","ts":1700000000000}
//                     {"type":"error","message":"..."}   a bad frame; the socket stays open
//
// Pure functions, no I/O: callable from any thread. `ts` is milliseconds since
// the Unix epoch, set by the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace hv::chat {

inline constexpr size_t kMaxNameChars = 32;  // Unicode code points, after cleaning
inline constexpr std::string_view kDefaultName = "guest";

struct ChatMessage {
  std::string name;
  std::string text;
  int64_t ts = 0;  // ms since the epoch
};

struct ClientMessage {
  enum class Type { kHello, kSay };
  Type type;
  std::string value;  // the name for kHello, the text for kSay (both raw)
};

// Parses one client frame; the error is a short sentence for an "error" reply.
std::expected<ClientMessage, std::string> parseClientMessage(std::string_view frame);

// Drops control, zero-width and bidi-override characters (they would let a name
// impersonate another), folds whitespace runs into one space, trims, and keeps
// at most kMaxNameChars code points. An empty result becomes kDefaultName.
// REQUIRES: `raw` is valid UTF-8 (Boost.JSON validates it while parsing).
std::string sanitizeName(std::string_view raw);

// Drops control characters other than tab and newline, then trims whitespace
// at both ends. Empty means "nothing to say".
std::string cleanText(std::string_view raw);

std::string encodeWelcome(const std::vector<std::string>& users, const std::deque<ChatMessage>& history);
std::string encodeJoin(std::string_view name);
std::string encodeLeave(std::string_view name);
std::string encodeMessage(const ChatMessage& message);
std::string encodeError(std::string_view message);

}  // namespace hv::chat
