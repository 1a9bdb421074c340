#!/usr/bin/env python3
"""An HTTP fault proxy for keyward's reliability suite (scripts/chaos.sh, tests/chaos.rs).

Forwards every request to an upstream HTTP server (privacyIDEA, a provider mock) and, for a
share of them, answers with a fault instead of -- or on top of -- the upstream's answer:

    status      a 500, 502 or 503 with a JSON error body (not forwarded)
    throttle    429 with `Retry-After: 1` (not forwarded)
    throttle-bare  429 without a hint (not forwarded)
    timeout     holds the request without answering for --hold seconds, then closes
    reset       closes the connection without an answer (not forwarded)
    reset-body  forwards, then sends the status line, the headers and half the body, and
                closes (a reset mid-body)
    truncated   forwards, then answers with the first half of the JSON body (a consistent
                Content-Length: the client sees a complete but broken document)
    short-page  forwards a listing (a GET) and drops the last entry of the page: privacyIDEA's
                `result.value.tokens`, a top-level JSON array (Okta), Graph's `value` (Entra)
    empty       200 with an empty body (not forwarded)
    unauthorized  401 with privacyIDEA's "JWT expired" error (code 4305; not forwarded)

Faults that are "not forwarded" never reach the upstream; the others reach it, so a DELETE
answered with a broken body was carried out. Control over HTTP on the same port:

    GET /__chaos/stats        counts of requests and faults by kind (JSON)
    POST /__chaos/rate?r=0.3  change the fault rate (0 stops faults)

Standard library only. Usage:
    fault_proxy.py --upstream http://127.0.0.1:5001 --port 0 --rate 0.3 --seed 7 [--kinds a,b]
The chosen port is printed on stdout as `listening <port>`.
"""

import argparse
import http.client
import http.server
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

KINDS = ["status", "throttle", "throttle-bare", "timeout", "reset", "reset-body", "truncated",
         "short-page", "empty", "unauthorized"]


class State:
    def __init__(self, upstream, rate, seed, kinds, hold):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.rate = rate
        self.random = random.Random(seed)
        self.kinds = kinds
        self.hold = hold
        self.lock = threading.Lock()
        self.requests = 0
        self.faults = {k: 0 for k in KINDS}

    def draw(self, method, path):
        """The fault for this request, or None."""
        with self.lock:
            self.requests += 1
            if self.random.random() >= self.rate:
                return None
            eligible = [k for k in self.kinds if k != "short-page" or method == "GET"]
            kind = self.random.choice(eligible)
            self.faults[kind] += 1
            return kind


def error_body(code, message):
    return json.dumps({"jsonrpc": "2.0", "result": {"status": False,
                       "error": {"code": code, "message": message}}}).encode()


def drop_last_entry(data):
    """The page without its last entry, for the listing shapes keyward reads; other bodies
    unchanged."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    if isinstance(doc, list):
        entries = doc
    elif isinstance(doc, dict) and isinstance(doc.get("value"), list):
        entries = doc["value"]
    else:
        try:
            entries = doc["result"]["value"]["tokens"]
        except (KeyError, TypeError):
            return data
    if entries:
        entries.pop()
    return json.dumps(doc).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by main

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _control(self):
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/__chaos/stats":
            with self.state.lock:
                doc = {"requests": self.state.requests, "faults": dict(self.state.faults),
                       "rate": self.state.rate}
            self._answer(200, json.dumps(doc).encode())
        elif parsed.path == "/__chaos/rate":
            rate = float(urllib.parse.parse_qs(parsed.query).get("r", ["0"])[0])
            with self.state.lock:
                self.state.rate = rate
            self._answer(200, json.dumps({"rate": rate}).encode())
        else:
            self._answer(404, b"{}")

    def _forward(self, body):
        up = self.state.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        # The Host header goes through: a provider that builds paging links from it (Okta's Link,
        # Graph's nextLink) then points them back at the proxy.
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, [(k, v) for k, v in response.getheaders()
                                 if k.lower() not in ("content-length", "transfer-encoding", "connection")], data

    def _relay(self, status, headers, data):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        if self.path.startswith("/__chaos/"):
            return self._control()
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        kind = self.state.draw(self.command, path)
        if kind == "status":
            return self._answer(self.state.random.choice([500, 502, 503]), error_body(903, "injected outage"))
        if kind == "throttle":
            return self._answer(429, error_body(429, "injected rate limit"), [("Retry-After", "1")])
        if kind == "throttle-bare":
            return self._answer(429, error_body(429, "injected rate limit"))
        if kind == "timeout":
            time.sleep(self.state.hold)
            self.close_connection = True
            return None
        if kind == "reset":
            self._reset()
            return None
        if kind == "empty":
            return self._answer(200, b"")
        if kind == "unauthorized":
            return self._answer(401, error_body(4305, "The JWT has expired (injected)"))
        status, headers, data = self._forward(body)
        if kind == "reset-body":
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return None
        if kind == "truncated":
            return self._relay(status, headers, data[: len(data) // 2])
        if kind == "short-page":
            data = drop_last_entry(data)
        return self._relay(status, headers, data)

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--hold", type=float, default=5.0, help="seconds a `timeout` fault holds a request")
    a = p.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown fault kinds: {unknown}")
    Handler.state = State(a.upstream, a.rate, a.seed, kinds, a.hold)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
