"""A small OpenAI-compatible server on 127.0.0.1 that misbehaves on demand.

Stdlib ``http.server`` in a thread (a thread per request, a random port). It
answers ``POST /v1/chat/completions`` (whatever the model name) by echoing the
prompt's words, cut at ``max_tokens``, refusing prompts that match ``refuse``;
``GET /v1/models`` lists ``models`` (404 when None); an answer names the model
``served_as`` (default: the one asked for). A test scripts the faults:

- ``plan``: what the next requests get, in order; ``rules``: (regex on the last
  message, mode) pairs; ``by_model``: the mode for a requested model name;
  ``always``: what every other request gets;
- a mode is ``ok``, ``hang`` (no answer for ``hang`` seconds), ``drop`` (the
  connection closed without an answer), ``nonjson`` (a 200 HTML page),
  ``badjson`` (a 200 ``application/json`` body that is not JSON), ``huge`` (an
  answer of ``huge_chars`` characters, whatever ``max_tokens`` says),
  ``context`` (the 400 a server sends for a prompt beyond its context window),
  ``echo401`` (a 401 whose body echoes the request's URL and ``Authorization``
  header), or an HTTP status (``429``, ``500``...) with ``error_message`` (default
  ``fake failure <status>``);
- ``delay``: seconds every answer takes (a slow server);
- ``die_after``: answer that many requests, then stop listening and drop every
  other request (a server killed mid-batch).

What it saw: ``requests`` (bodies), ``paths`` (with their query), ``auth``
(``Authorization`` headers), ``answered`` (200s sent) and ``listings`` (GETs of
``/v1/models``). :func:`closed_port` gives a port nobody listens at (a server
that is down).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_xsafety.engine.backends import Backend, load_backend
from pytest_xsafety.setup.models import user_models

REFUSAL = "I'm sorry, but I can't help with that."
# What llama.cpp's and OpenAI's servers say for a prompt beyond the context window.
CONTEXT_MESSAGE = (
    "This model's maximum context length is 2048 tokens. However, you requested 2304 "
    "tokens (2048 in the messages, 256 in the completion). Please reduce the length of "
    "the messages or completion."
)


@dataclass
class FaultServer:
    port: int = 0
    plan: list[str] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)
    by_model: dict[str, str] = field(default_factory=dict)
    always: str = "ok"
    refuse: str | None = None
    delay: float = 0.0
    hang: float = 1.5
    die_after: int | None = None
    huge_chars: int = 4_000_000
    error_message: str | None = None
    models: list[str] | None = field(default_factory=lambda: ["served-model"])
    served_as: str | None = None  # the ``model`` an answer names (default: the one asked for)
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    auth: set[str] = field(default_factory=set)
    answered: int = 0
    listings: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def behaviour(self, path: str, body: dict[str, Any], auth: str) -> str:
        with self.lock:
            self.requests.append(body)
            self.paths.append(path)
            self.auth.add(auth)
            if self.die_after is not None and self.answered + self.in_flight >= self.die_after:
                return "drop"  # dead already, or every answer it has left is being sent
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.plan:
                return self.plan.pop(0)
        prompt = str(body["messages"][-1]["content"])
        rule = next((mode for pattern, mode in self.rules if re.search(pattern, prompt)), None)
        return rule or self.by_model.get(str(body["model"]), self.always)

    def finished(self, answered: bool) -> None:
        with self.lock:
            self.in_flight -= 1
            self.answered += answered
            dying = self.die_after is not None and self.answered >= self.die_after
        if dying and self._httpd is not None:
            threading.Thread(target=self._die, daemon=True).start()

    def _die(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()  # new connections are refused from now on

    def answer(self, body: dict[str, Any], huge: bool = False) -> dict[str, Any]:
        prompt = body["messages"][-1]["content"]
        words = REFUSAL.split() if self.refuse and re.search(self.refuse, prompt) else None
        words = words or ["Sure:", *prompt.split()]
        kept = words[: body["max_tokens"]]
        text = ("word " * (self.huge_chars // 5 + 1))[: self.huge_chars] if huge else " ".join(kept)
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": self.served_as or body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if len(words) > len(kept) else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": len(kept),
                "total_tokens": 5 + len(kept),
            },
        }


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode())

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/v1/models" and server.models is not None:
                with server.lock:
                    server.listings += 1
                listed = [{"id": m, "object": "model", "owned_by": "me"} for m in server.models]
                self._json(200, {"object": "list", "data": listed})
            else:
                self._json(404, {"error": {"message": "no such route"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization", "")
            what = server.behaviour(self.path, body, auth)
            if what == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            answered = False
            try:
                answered = self._answer(what, body, auth)
            except OSError:
                pass  # the client gave up on a hung request
            finally:
                server.finished(answered)

        def _answer(self, what: str, body: dict[str, Any], auth: str) -> bool:
            """Send what ``what`` says; whether it was a 200 answer."""
            if self.path.split("?")[0] != "/v1/chat/completions":
                self._json(404, {"error": {"message": "no such route"}})
            elif what == "hang":
                time.sleep(server.hang)
                self.close_connection = True
            elif what == "nonjson":
                page = "<html><body><h1>502 Bad Gateway</h1>" + "<p>nginx</p>" * 40
                self._send(200, page.encode(), "text/html")
                return True
            elif what == "badjson":
                self._send(200, b'{"choices": [')
                return True
            elif what == "context":
                error = {"message": CONTEXT_MESSAGE, "type": "invalid_request_error",
                         "code": "context_length_exceeded"}  # fmt: skip
                self._json(400, {"error": error})
            elif what == "echo401":
                url = f"http://{self.headers.get('Host')}{self.path}"
                message = f"invalid credentials for {url}: Authorization: {auth}"
                self._json(401, {"error": {"message": message, "type": "auth"}})
            elif what.isdigit():
                message = server.error_message or f"fake failure {what}"
                self._json(int(what), {"error": {"message": message, "type": "x"}})
            else:
                time.sleep(server.delay)
                self._json(200, server.answer(body, huge=what == "huge"))
                return True
            return False

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a "hang" is expected


@contextmanager
def serve(fake: FaultServer) -> Iterator[FaultServer]:
    """Run ``fake`` on a random port of 127.0.0.1 until the block ends."""
    httpd = _Server(("127.0.0.1", 0), _handler(fake))
    fake.port = httpd.server_address[1]
    fake._httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake._die()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens at (a server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def openai_backend(base_url: str, **options: object) -> Backend:
    """The openai backend for model ``api`` (``served-model``) at ``base_url``, its key
    in ``XSAFETY_TEST_KEY``, retrying fast."""
    opts = {"base_url": base_url, "api_key_env": "XSAFETY_TEST_KEY", "backoff": 0.01, **options}
    entry = {"backend": "openai", "hub_id": "served-model", "options": opts}
    spec = user_models({"api": entry}, "pyproject.toml")["api"]
    return load_backend(spec, runtime=None)  # type: ignore[arg-type]
