#include "protocol.h"

#include <boost/json.hpp>

namespace hv::chat {

namespace json = boost::json;

namespace {

// Decodes the code point starting at s[i] and advances i. Input is valid UTF-8.
char32_t nextCodePoint(std::string_view s, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = byte(i);
  size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  if (i + len > s.size()) len = s.size() - i;  // defensive: never read past the end
  char32_t cp = len == 1 ? lead : len == 2 ? lead & 0x1F : len == 3 ? lead & 0x0F : lead & 0x07;
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
  i += len;
  return cp;
}

bool isControl(char32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// Unicode space separators (Zs) and line/paragraph separators.
bool isUnicodeSpace(char32_t cp) {
  return cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Characters that are invisible or reorder the text around them (Unicode
// TR9 explicit formatting, zero-width marks, BOM): harmless in a message,
// but in a name they let "ann" look like someone else.
bool isInvisibleOrBidi(char32_t cp) {
  return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) ||
         cp == 0xFEFF;
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string dump(const json::object& object) { return json::serialize(object); }

json::object toJson(const ChatMessage& m) {
  return {{"type", "message"}, {"name", m.name}, {"text", m.text}, {"ts", m.ts}};
}

}  // namespace

std::expected<ClientMessage, std::string> parseClientMessage(std::string_view frame) {
  boost::system::error_code ec;
  json::value value = json::parse(frame, ec);
  if (ec) return std::unexpected("the frame is not valid JSON: " + ec.message());
  const json::object* object = value.if_object();
  if (!object) return std::unexpected(std::string("the frame must be a JSON object"));
  const json::value* type = object->if_contains("type");
  if (!type || !type->is_string()) return std::unexpected(std::string("\"type\" must be a string"));
  auto field = [&](std::string_view key) -> const json::string* {
    const json::value* v = object->if_contains(key);
    return v ? v->if_string() : nullptr;
  };
  if (type->get_string() == "hello") {
    const json::string* name = field("name");
    if (!name) return std::unexpected(std::string("hello needs a string \"name\""));
    return ClientMessage{ClientMessage::Type::kHello, std::string(*name)};
  }
  if (type->get_string() == "say") {
    const json::string* text = field("text");
    if (!text) return std::unexpected(std::string("say needs a string \"text\""));
    return ClientMessage{ClientMessage::Type::kSay, std::string(*text)};
  }
  return std::unexpected("unknown type \"" + std::string(type->get_string()) + "\"");
}

std::string sanitizeName(std::string_view raw) {
  std::string out;
  size_t chars = 0;
  bool pendingSpace = false;
  for (size_t i = 0; i < raw.size() && chars < kMaxNameChars;) {
    size_t start = i;
    char32_t cp = nextCodePoint(raw, i);
    if (isInvisibleOrBidi(cp)) continue;
    if (isControl(cp) || isUnicodeSpace(cp)) {
      pendingSpace = !out.empty();  // fold runs; never lead with a space
      continue;
    }
    if (pendingSpace) {
      if (chars + 2 > kMaxNameChars) break;  // a space must be followed by something
      out += ' ';
      ++chars;
      pendingSpace = false;
    }
    out.append(raw.substr(start, i - start));
    ++chars;
  }
  if (out.empty()) return std::string(kDefaultName);
  return out;
}

std::string cleanText(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size();) {
    size_t start = i;
    char32_t cp = nextCodePoint(raw, i);
    if (isControl(cp) && cp != '\t' && cp != '\n') continue;
    out.append(raw.substr(start, i - start));
  }
  return std::string(trim(out));
}

std::string encodeWelcome(const std::vector<std::string>& users, const std::deque<ChatMessage>& history) {
  json::array userArray;
  for (const auto& user : users) userArray.emplace_back(user);
  json::array historyArray;
  for (const auto& message : history) historyArray.emplace_back(toJson(message));
  return dump({{"type", "welcome"}, {"users", std::move(userArray)}, {"history", std::move(historyArray)}});
}

std::string encodeJoin(std::string_view name) { return dump({{"type", "join"}, {"name", name}}); }

std::string encodeLeave(std::string_view name) { return dump({{"type", "leave"}, {"name", name}}); }

std::string encodeMessage(const ChatMessage& message) { return dump(toJson(message)); }

std::string encodeError(std::string_view message) { return dump({{"type", "error"}, {"message", message}}); }

}  // namespace hv::chat
