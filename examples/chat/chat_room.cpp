#include "chat_room.h"

#include <algorithm>
#include <chrono>
#include <iostream>

#include "websocket_session.h"

namespace hv::chat {

namespace {

int64_t nowMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

void ChatRoom::add(WebSocketSession& session) {
  sessions_.push_back(&session);
  if (closing_) return session.close(WebSocketSession::kGoingAway);
  session.send(std::make_shared<const std::string>(encodeWelcome(joinedNames(), history_)));
}

void ChatRoom::join(WebSocketSession& session) {
  std::cout << "join " << session.name() << " (" << joinedNames().size() << " online)" << std::endl;
  broadcast(encodeJoin(session.name()));
}

void ChatRoom::say(WebSocketSession& session, std::string text) {
  ChatMessage message{session.name(), std::move(text), nowMillis()};
  broadcast(encodeMessage(message));
  history_.push_back(std::move(message));
  if (history_.size() > kHistorySize) history_.pop_front();
}

void ChatRoom::remove(WebSocketSession& session) {
  std::erase(sessions_, &session);
  if (session.joined()) {
    std::cout << "leave " << session.name() << " (" << joinedNames().size() << " online)" << std::endl;
    broadcast(encodeLeave(session.name()));
  }
  if (closing_ && sessions_.empty() && onEmpty_) std::exchange(onEmpty_, nullptr)();
}

void ChatRoom::closeAll(std::function<void()> onEmpty) {
  closing_ = true;
  onEmpty_ = std::move(onEmpty);
  if (sessions_.empty()) return std::exchange(onEmpty_, nullptr)();
  for (WebSocketSession* session : sessions_) session->close(WebSocketSession::kGoingAway);
}

void ChatRoom::broadcast(std::string frame) {
  // While closing, sessions may be torn down from the io_context's destructor:
  // starting new writes then would touch a dying io_context.
  if (closing_) return;
  auto shared = std::make_shared<const std::string>(std::move(frame));
  // send() never completes inline (Asio posts every handler), so no session
  // can leave the vector while we walk it.
  for (WebSocketSession* session : sessions_) session->send(shared);
}

std::vector<std::string> ChatRoom::joinedNames() const {
  std::vector<std::string> names;
  for (const WebSocketSession* session : sessions_)
    if (session->joined()) names.push_back(session->name());
  return names;
}

}  // namespace hv::chat
