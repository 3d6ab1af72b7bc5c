// ChatRoom: the one room every WebSocket session belongs to. Owns the last
// kHistorySize messages and the list of connected sessions (not owned: each
// session adds itself once its handshake is done and removes itself when it
// is destroyed). Broadcasts serialize a frame once and share it.
//
// Single-threaded: call only from the io_context's thread. Logs one line per
// join and leave on stdout, which hostvisor keeps as the instance's log.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol.h"

namespace hv::chat {

class WebSocketSession;

class ChatRoom {
 public:
  static constexpr size_t kHistorySize = 50;

  // A new connection: sends it the welcome (users, history). While closing,
  // the session is told to go away instead.
  void add(WebSocketSession& session);
  // The session said hello: announces it to everyone, itself included.
  void join(WebSocketSession& session);
  // A joined session said something (already cleaned, non-empty).
  void say(WebSocketSession& session, std::string text);
  // The session is gone; announces its leave if it had joined.
  void remove(WebSocketSession& session);

  // Shutdown: closes every session with 1001 (going away) and calls
  // `onEmpty` once the last one is gone (at once if there are none).
  // Nothing is broadcast from then on.
  void closeAll(std::function<void()> onEmpty);

  size_t size() const { return sessions_.size(); }

 private:
  void broadcast(std::string frame);
  std::vector<std::string> joinedNames() const;

  std::vector<WebSocketSession*> sessions_;  // in arrival order
  std::deque<ChatMessage> history_;
  bool closing_ = false;
  std::function<void()> onEmpty_;
};

}  // namespace hv::chat
