#!/usr/bin/python3
"""Black-box test of hostvisor-chat: the real binary on 127.0.0.1, real clients.

    chat_test.py path/to/hostvisor-chat

Needs Debian's python3-websockets (10.x). Every wait is bounded; nothing sleeps
to wait for an event: the test waits for the server's log lines or frames.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

TIMEOUT = 5          # seconds for any one expected event
START_TIMEOUT = 10   # seconds for the server to start listening
MAX_FRAME = 4096


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The binary as a child process; its stdout lines are collected as they come."""

    def __init__(self, binary):
        self.binary = binary
        self.port = free_port()
        self.lines = []
        self.changed = asyncio.Condition()
        self.proc = None

    async def start(self):
        env = dict(os.environ, PORT=str(self.port))
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, env=env, stdout=asyncio.subprocess.PIPE)
        self.reader = asyncio.create_task(self._read())
        await self.wait_log(f"chat: listening on 127.0.0.1:{self.port}", START_TIMEOUT)

    async def _read(self):
        while line := await self.proc.stdout.readline():
            async with self.changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()

    async def wait_log(self, line, timeout=TIMEOUT):
        async def seen():
            async with self.changed:
                await self.changed.wait_for(lambda: line in self.lines or self.proc.returncode is not None)
        try:
            await asyncio.wait_for(seen(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"no log line {line!r} within {timeout}s") from None
        check(line in self.lines, f"server exited before logging {line!r}")

    def has_log(self, line):
        return line in self.lines

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/chat/ws"


async def connect(server, **kwargs):
    return await websockets.connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kwargs)


async def recv(ws):
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    except asyncio.TimeoutError:
        raise Failure("no frame within %ss" % TIMEOUT) from None


async def expect(ws, type_, **fields):
    msg = await recv(ws)
    check(msg.get("type") == type_, f"expected a {type_!r} frame, got {msg}")
    for key, value in fields.items():
        check(msg.get(key) == value, f"{type_}.{key}: expected {value!r}, got {msg.get(key)!r}")
    return msg


async def say(ws, text):
    await ws.send(json.dumps({"type": "say", "text": text}))


async def hello(ws, name):
    await ws.send(json.dumps({"type": "hello", "name": name}))


async def expect_closed(ws, code):
    try:
        frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
        raise Failure(f"expected the socket to close with {code}, got a frame {frame[:80]!r}")
    except websockets.ConnectionClosed:
        pass
    except asyncio.TimeoutError:
        raise Failure(f"the socket did not close within {TIMEOUT}s") from None
    check(ws.close_code == code, f"close code: expected {code}, got {ws.close_code}")


def http_get(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


# ---- the steps ---------------------------------------------------------------

def test_configuration_errors(binary):
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    for extra, args, needle in (({}, [], "PORT is not set"),
                                ({"PORT": "abc"}, [], "not a port number"),
                                ({"PORT": "70000"}, [], "not a port number"),
                                ({}, ["--listen", "localhost"], "ADDR:PORT"),
                                ({}, ["--bogus"], "unknown argument")):
        run = subprocess.run([binary, *args], env={**env, **extra}, capture_output=True, text=True, timeout=TIMEOUT)
        check(run.returncode == 2, f"{extra} {args}: exit {run.returncode}, want 2")
        check(needle in run.stderr, f"{extra} {args}: stderr lacks {needle!r}: {run.stderr!r}")


async def test_http(server):
    status, headers, body = await asyncio.to_thread(http_get, server.url + "/chat/")
    check(status == 200, f"GET /chat/: {status}")
    check(headers["Content-Type"].startswith("text/html"), f"GET /chat/: {headers['Content-Type']}")
    check("<!doctype html>" in body and "/chat/ws" in body, "GET /chat/ is not the chat page")
    status, _, body2 = await asyncio.to_thread(http_get, server.url + "/chat")
    check(status == 200 and body2 == body, "GET /chat does not serve the page")
    status, _, body = await asyncio.to_thread(http_get, server.url + "/chat/healthz")
    check(status == 200 and body == "ok", f"GET /chat/healthz: {status} {body!r}")
    status, _, _ = await asyncio.to_thread(http_get, server.url + "/chat/nope")
    check(status == 404, f"GET /chat/nope: {status}")
    status, _, body = await asyncio.to_thread(http_get, server.url + "/")  # follows the redirect
    check(status == 200 and "/chat/ws" in body, f"GET / does not lead to the page: {status}")
    status, headers, _ = await asyncio.to_thread(http_get, server.url + "/chat/", "POST")
    check(status == 405 and headers["Allow"] == "GET, HEAD", f"POST /chat/: {status}")


async def test_conversation(server):
    ann = await connect(server)
    await expect(ann, "welcome", users=[], history=[])
    await hello(ann, "ann")
    await expect(ann, "join", name="ann")
    await server.wait_log("join ann (1 online)")

    bob = await connect(server)
    await expect(bob, "welcome", users=["ann"], history=[])
    await hello(bob, "bob")
    await expect(ann, "join", name="bob")
    await expect(bob, "join", name="bob")

    before = time.time() * 1000
    await say(ann, "  hi there \n")
    for ws in (ann, bob):  # everyone, the sender included
        msg = await expect(ws, "message", name="ann", text="hi there")
        check(isinstance(msg["ts"], int) and before - 60_000 < msg["ts"] < before + 60_000, f"ts {msg['ts']}")

    await say(bob, "   ")  # nothing left after trimming: not broadcast
    await say(bob, "hello ann")
    await expect(ann, "message", name="bob", text="hello ann")
    await expect(bob, "message", name="bob", text="hello ann")

    await bob.close()
    await expect(ann, "leave", name="bob")
    await server.wait_log("leave bob (1 online)")
    return ann


async def test_protocol_errors(server, ann):
    eve = await connect(server)
    await expect(eve, "welcome", users=["ann"])
    await say(eve, "sneaky")
    await expect(eve, "error", message="send hello first")
    await eve.send("{not json")
    await expect(eve, "error")
    await eve.send(json.dumps({"type": "dance"}))
    await expect(eve, "error")
    # Bidi override dropped, whitespace folded and trimmed, 32 code points kept.
    await hello(eve, "\u202e  x\ty " + "z" * 40)
    want = "x y " + "z" * 28
    await expect(eve, "join", name=want)
    await expect(ann, "join", name=want)
    await hello(eve, "again")
    await expect(eve, "error", message="already joined")
    await eve.close()
    await expect(ann, "leave", name=want)

    binary = await connect(server)  # never joined: no leave is announced for it
    await expect(binary, "welcome")
    await binary.send(b"\x00\x01")
    await expect_closed(binary, 1003)


async def test_history_and_limits(server, ann):
    cy = await connect(server)
    welcome = await expect(cy, "welcome", users=["ann"])
    texts = [(m["name"], m["text"]) for m in welcome["history"]]
    check(texts == [("ann", "hi there"), ("bob", "hello ann")], f"history: {texts}")
    await hello(cy, "cy")
    await expect(ann, "join", name="cy")
    await expect(cy, "join", name="cy")

    # A frame of exactly 4096 bytes passes; one byte more closes with 1009.
    overhead = len(json.dumps({"type": "say", "text": ""}))
    await say(cy, "x" * (MAX_FRAME - overhead))
    await expect(ann, "message", name="cy", text="x" * (MAX_FRAME - overhead))
    await expect(cy, "message", name="cy")
    await say(cy, "x" * (MAX_FRAME - overhead + 1))
    await expect_closed(cy, 1009)
    await expect(ann, "leave", name="cy")

    # History keeps the last 50 messages.
    for i in range(55):
        await say(ann, f"n{i}")
    for i in range(55):
        await expect(ann, "message", text=f"n{i}")
    dee = await connect(server)
    history = (await expect(dee, "welcome"))["history"]
    check([m["text"] for m in history] == [f"n{i}" for i in range(5, 55)], "history is not the last 50")
    await dee.close()


async def test_slow_client_dropped(server, ann):
    # A client that stops reading: a small receive buffer, and websockets
    # stops pulling bytes once one message waits unread.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    slow = await websockets.connect(server.ws_url, sock=sock, open_timeout=TIMEOUT, close_timeout=1,
                                    max_queue=1, read_limit=4096)
    await hello(slow, "slow")
    await expect(ann, "join", name="slow")

    left = asyncio.Event()

    async def drain():  # ann must keep up, or it would be dropped too
        while not left.is_set():
            msg = await ann.recv()
            if '"leave"' in msg and json.loads(msg) == {"type": "leave", "name": "slow"}:
                left.set()

    drainer = asyncio.create_task(drain())
    chunk = "y" * 4000
    deadline = time.monotonic() + 30
    sent = 0
    try:
        while not server.has_log("drop slow: its send queue is over 1 MiB"):
            check(time.monotonic() < deadline, f"slow client not dropped after {sent} messages")
            check(not drainer.done(), "the draining reader stopped")
            await asyncio.wait_for(say(ann, chunk), TIMEOUT)
            sent += 1
        await asyncio.wait_for(left.wait(), TIMEOUT)
    finally:
        drainer.cancel()  # websockets: cancelling recv() loses no message
        await asyncio.gather(drainer, return_exceptions=True)
    slow.transport.abort()
    # ann may have sent a few more before the log line arrived: read up to a
    # marker, so that what follows starts from a quiet room.
    await say(ann, "sync")
    while not ((msg := await recv(ann))["type"] == "message" and msg["text"] == "sync"):
        pass
    print(f"  (dropped after {sent} messages of 4 KB)")


async def test_sigterm(server, ann):
    zed = await connect(server)
    await expect(zed, "welcome")
    server.proc.send_signal(signal.SIGTERM)
    await expect_closed(zed, 1001)
    try:
        code = await asyncio.wait_for(server.proc.wait(), TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure("still running 5 s after SIGTERM") from None
    check(code == 0, f"exit status after SIGTERM: {code}")
    await asyncio.wait_for(server.reader, TIMEOUT)
    check(server.has_log("chat: stopped"), "no 'chat: stopped' line")
    ann.transport.abort()


async def run(binary):
    print("configuration errors"); test_configuration_errors(binary)
    server = Server(binary)
    try:
        await server.start()
        print("http"); await test_http(server)
        print("conversation"); ann = await test_conversation(server)
        print("protocol errors"); await test_protocol_errors(server, ann)
        print("history and limits"); await test_history_and_limits(server, ann)
        print("slow client"); await test_slow_client_dropped(server, ann)
        print("sigterm"); await test_sigterm(server, ann)
    except BaseException:
        print("server log:\n  " + "\n  ".join(server.lines), file=sys.stderr)
        raise
    finally:
        await server.stop()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: chat_test.py path/to/hostvisor-chat")
    try:
        asyncio.run(run(os.path.abspath(sys.argv[1])))
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
