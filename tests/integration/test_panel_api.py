"""The panel's API (issue 17): served at / of the TCP listener, sessions from
a token (HttpOnly SameSite=Strict cookie + CSRF token), the checks a browser
session gets (CSRF, Origin, Host against DNS rebinding, failed sign-ins
throttled), and the pushed event stream. Attacks are tried as a page of
another origin or a stolen-cookie client would."""

import asyncio
import http.client
import json
import os
import unittest

import websockets
import websockets.exceptions

from harness import Daemon, DaemonTestCase
from test_proxy import write_config


class PanelApiTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.host = "%s:%d" % self.d.api_addr
        self.origin = "http://" + self.host

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(*self.d.api_addr, timeout=10)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
        finally:
            conn.close()

    def sign_in(self, token=None):
        status, hdrs, data = self.request("POST", "/api/v1/session", {"token": token or self.d.token},
                                          {"Content-Type": "application/json", "Origin": self.origin})
        self.assertEqual(status, 201, data)
        cookie = hdrs["set-cookie"]
        for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
            self.assertIn(attr, cookie)
        return cookie.split(";")[0], json.loads(data)["csrf"]

    def browser(self, cookie, csrf=None, origin=..., host=None):
        h = {"Cookie": cookie, "Content-Type": "application/json"}
        if csrf:
            h["X-CSRF-Token"] = csrf
        if origin is ...:
            origin = self.origin
        if origin:
            h["Origin"] = origin
        if host:
            h["Host"] = host
        return h

    def test_the_panel_is_served_with_a_strict_policy(self):
        status, hdrs, data = self.request("GET", "/", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/html"), hdrs)
        self.assertEqual(hdrs.get("content-encoding"), "gzip")
        csp = hdrs["content-security-policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(hdrs["x-frame-options"], "DENY")
        status, _, _ = self.request("GET", "/no-such-file.js")
        self.assertEqual(status, 404)

    def test_sign_in_session_and_sign_out(self):
        cookie, csrf = self.sign_in()
        status, _, data = self.request("GET", "/api/v1/session", headers=self.browser(cookie))
        self.assertEqual(status, 200, data)
        self.assertEqual(json.loads(data)["csrf"], csrf)
        status, _, data = self.request("GET", "/api/v1/instances", headers=self.browser(cookie))
        self.assertEqual(status, 200, data)
        status, hdrs, data = self.request("DELETE", "/api/v1/session", headers=self.browser(cookie, csrf))
        self.assertEqual(status, 200, data)
        self.assertIn("Max-Age=0", hdrs["set-cookie"])
        status, _, _ = self.request("GET", "/api/v1/instances", headers=self.browser(cookie))
        self.assertEqual(status, 401, "the cookie still works after sign-out")

    def test_wrong_token_is_refused_and_throttled(self):
        statuses = [self.request("POST", "/api/v1/session", {"token": "0" * 64},
                                 {"Content-Type": "application/json"})[0] for _ in range(21)]
        self.assertEqual(statuses[0], 401)
        self.assertEqual(statuses[-1], 429, statuses)

    def test_cross_site_and_rebinding_requests_are_refused(self):
        cookie, csrf = self.sign_in()
        body = {"name": "x", "command": self.d.server_program(), "start": False}
        # A form or fetch from another site cannot know the CSRF token ...
        status, _, data = self.request("POST", "/api/v1/instances", body, self.browser(cookie))
        self.assertEqual(status, 403, data)
        # ... nor claim our origin (the browser sets Origin) ...
        status, _, data = self.request("POST", "/api/v1/instances", body,
                                       self.browser(cookie, csrf, origin="http://evil.example"))
        self.assertEqual(status, 403, data)
        # ... and a page on a name that resolves here (DNS rebinding) is not us.
        status, _, data = self.request("GET", "/api/v1/instances", headers=self.browser(cookie, host="evil.example:80"))
        self.assertEqual(status, 403, data)
        # A sign-in posted by another origin's page (login CSRF) is refused too.
        status, _, data = self.request("POST", "/api/v1/session", {"token": self.d.token},
                                       {"Content-Type": "application/json", "Origin": "http://evil.example"})
        self.assertEqual(status, 403, data)
        # The real page's request goes through; nothing was made before.
        status, _, data = self.request("POST", "/api/v1/instances", body, self.browser(cookie, csrf))
        self.assertEqual(status, 201, data)
        self.assertEqual([o["name"] for o in self.d.ls()], ["x"])
        # Bearer clients are unchanged: no cookie, no CSRF.
        self.assertEqual(self.d.api("GET", "/api/v1/instances")[0], 200)

    def test_events_push_every_change(self):
        cookie, csrf = self.sign_in()

        async def run():
            async with websockets.connect("ws://%s/api/v1/events" % self.host, open_timeout=10,
                                          extra_headers={"Cookie": cookie, "Origin": self.origin}) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                self.assertEqual(first, {"type": "snapshot", "instances": []})
                status, _, data = await asyncio.to_thread(
                    self.request, "POST", "/api/v1/instances",
                    {"name": "ev", "command": self.d.server_program()}, self.browser(cookie, csrf))
                self.assertEqual(status, 201, data)
                states = []
                while "running" not in states:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    self.assertEqual(msg["type"], "instance", msg)
                    self.assertEqual(msg["instance"]["name"], "ev")
                    states.append(msg["instance"]["state"])
                self.assertEqual(states[0], "starting", states)
                await asyncio.to_thread(self.d.cli, "rm", "ev")
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg["type"] == "deleted":
                        self.assertEqual(msg["name"], "ev")
                        break
        asyncio.run(run())

    def test_history_answers_for_the_sparklines(self):
        # Samples come every 30 s; here only the shape and the access check.
        self.d.cli("create", "hist", "--command", self.d.server_program(), "--no-start")
        status, body = self.d.api("GET", "/api/v1/instances/hist/history")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["interval_s"], 30)
        self.assertIsInstance(body["cpu_percent"], list)
        self.assertEqual(len(body["cpu_percent"]), len(body["rss_bytes"]))
        self.assertEqual(self.d.api("GET", "/api/v1/instances/nope/history")[0], 404)

    def test_events_from_another_origin_are_refused(self):
        cookie, _ = self.sign_in()

        async def run():
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as err:
                async with websockets.connect("ws://%s/api/v1/events" % self.host, open_timeout=10,
                                              extra_headers={"Cookie": cookie, "Origin": "http://evil.example"}):
                    pass
            self.assertEqual(err.exception.status_code, 403)
        asyncio.run(run())


class PanelThroughTheProxyTest(DaemonTestCase):
    """[panel] host: customers reach the panel through the front proxy on a
    host name (with its TLS in production), never the API port itself."""

    def test_the_panel_host_is_routed_to_the_panel_and_its_sessions_work(self):
        config = write_config(self, '[panel]\nhost = "panel.test"\n')
        with Daemon(extra_args=["--config", config]) as d:
            addr, _, port = d.info["proxy"].rpartition(":")

            def via_proxy(method, path, body=None, headers=None):
                conn = http.client.HTTPConnection(addr, int(port), timeout=10)
                try:
                    h = {"Host": "panel.test"}
                    h.update(headers or {})
                    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
                    resp = conn.getresponse()
                    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
                finally:
                    conn.close()

            status, hdrs, data = via_proxy("GET", "/")
            self.assertEqual(status, 200, data)
            self.assertIn(b"<html", data.lower())
            status, hdrs, data = via_proxy("POST", "/api/v1/session", {"token": d.token},
                                           {"Content-Type": "application/json", "Origin": "http://panel.test"})
            self.assertEqual(status, 201, data)
            cookie = hdrs["set-cookie"].split(";")[0]
            status, _, data = via_proxy("GET", "/api/v1/instances", headers={"Cookie": cookie})
            self.assertEqual(status, 200, data)
            # Another name on the same proxy is not the panel.
            status, _, _ = via_proxy("GET", "/", headers={"Host": "other.test"})
            self.assertEqual(status, 404)
            # An account cannot take the panel's host for an instance.
            status, body = d.api("POST", "/api/v1/instances", {"name": "squat", "command": d.server_program(),
                                                                "route": "panel.test/", "start": False})
            self.assertEqual(status, 409, body)

    def test_a_bad_panel_host_is_a_config_error_naming_it(self):
        config = write_config(self, '[panel]\nhost = "Panel Test"\n')
        d = Daemon(extra_args=["--config", config])
        with self.assertRaises(Exception) as err:
            d.__enter__()
        d.__exit__(None, None, None)
        self.assertIn("panel.host", str(err.exception))


if __name__ == "__main__":
    unittest.main()
