#!/usr/bin/python3
"""The smallest hostvisor instance: an HTTP server on the port hostvisor assigns.

hostvisor hands the port over as $PORT (and as {port} in the arguments); the
program needs no configuration of its own. The chat example (issue 4) replaces
this one in `make demo` once the front proxy exists.
"""
import http.server
import os

PORT = int(os.environ["PORT"])


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (f"hello from a hostvisor instance: pid {os.getpid()}, port {PORT}, "
                f"user {os.environ.get('USER', '?')}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # one line per request on stdout: the instance's log
        print(f"{self.client_address[0]} {fmt % args}", flush=True)


print(f"hello: listening on 127.0.0.1:{PORT}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Hello).serve_forever()
