#include "logkeeper/wire.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace hv::logkeeper {

std::string_view Message::get(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return v;
  }
  return {};
}

Status send(int socket, const Message& message) {
  std::string text = message.kind + "\n";
  for (const auto& [k, v] : message.fields) text += k + "=" + v + "\n";
  if (text.size() > kMaxMessage) return fail(Errc::kInvalidArgument, "log keeper message too large");
  if (message.fds.size() > kMaxFds) return fail(Errc::kInvalidArgument, "too many descriptors in one message");
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  if (!message.fds.empty()) {
    const size_t bytes = sizeof(int) * message.fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    for (size_t i = 0; i < message.fds.size(); ++i) {
      const int fd = message.fds[i].get();
      std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
    }
  }
  ssize_t n;
  do {
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return failErrno("send to the log keeper socket", errno);
  return {};
}

Result<Message> receive(int socket) {
  std::string text(kMaxMessage, '\0');
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return failErrno("receive from the log keeper socket", errno);
  Message out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  if (n == 0) return fail(Errc::kNotFound, "the log keeper connection closed");
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return fail(Errc::kInvalidArgument, "truncated log keeper message");
  text.resize(static_cast<size_t>(n));
  size_t pos = text.find('\n');
  out.kind = text.substr(0, pos);
  while (pos != std::string::npos && pos + 1 < text.size()) {
    const size_t end = text.find('\n', pos + 1);
    std::string_view line(text.data() + pos + 1, (end == std::string::npos ? text.size() : end) - pos - 1);
    const size_t eq = line.find('=');
    if (eq != std::string_view::npos) out.fields.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    pos = end;
  }
  return out;
}

}  // namespace hv::logkeeper
