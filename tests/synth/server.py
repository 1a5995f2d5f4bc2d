"""A real HTTP server on localhost that speaks the OpenAI completions and chat-completions API.

`FakeOpenAI` runs `http.server.ThreadingHTTPServer` in a thread on an ephemeral port. What it
answers comes from a `responder(body) -> list[str]` (one text per choice); scripted failures
(`fail`: a list of HTTP statuses, or "malformed", "not-json", "sleep:SECONDS" actions, used in
order before normal answers), a per-request delay, and a record of every request (time, body,
headers, in-flight count) let tests observe retries, backoff, timeouts and the concurrency limit.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ("summarize", "describe", "explain", "compare", "list", "rewrite", "classify", "translate", "suggest",
         "evaluate", "plan", "outline", "the", "following", "recipe", "poem", "email", "argument", "story", "budget",
         "schedule", "review", "article", "question", "tweet", "letter", "method", "habit", "river", "planet",
         "garden", "market", "engine", "history", "music", "winter", "coffee", "bridge", "forest", "language")


def prompt_text(body: dict) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    return str(body.get("prompt", ""))


def words(key: str, count: int) -> str:
    rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
    return " ".join(rng.choice(WORDS) for _ in range(count))


def canned(body: dict) -> list[str]:
    """Deterministic text that follows the self-instruct formats, varied by prompt, seed and choice."""
    text = prompt_text(body)
    out = []
    for choice in range(int(body.get("n", 1))):
        key = f"{text}\x1f{body.get('seed')}\x1f{choice}"
        if text.rstrip().endswith("Is it classification?"):
            out.append(" No")
        elif text.rstrip().endswith("."):  # instruction generation: continue the numbered list
            first = words(key + "a", 8).capitalize()
            second = words(key + "b", 9).capitalize()
            out.append(f" {first}.\n10. {second}.\n\n")
        else:
            out.append(f"Output: {words(key + 'o', 12)}.")
    return out


@dataclass
class Record:
    time: float
    path: str
    body: dict
    headers: dict
    in_flight: int


@dataclass
class FakeOpenAI:
    responder: Callable[[dict], list[str]] = canned
    fail: list[Any] = field(default_factory=list)  # scripted actions, consumed in order
    delay: float = 0.0
    finish_reason: str = "stop"
    max_choices: int | None = None  # answer with at most this many choices (a server that ignores n)
    gate: int = 0  # hold the first `gate` requests until all of them are in flight (at most 10 s)
    records: list[Record] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    dead: bool = False  # killed: in-flight requests are dropped unanswered, new connections refused
    answered: int = 0  # requests answered with choices
    die_after: int | None = None  # set by kill_when_busy: later requests are held unanswered until the kill

    def __post_init__(self) -> None:
        self.lock = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kill_when_busy(self, answered: int = 1, in_flight: int = 1) -> threading.Thread:
        """A thread that kills this server once it has answered `answered` requests and holds `in_flight`.

        Requests after the `answered`-th are held unanswered, so exactly `answered` are answered and the
        ones in flight at the kill are lost, however the threads are scheduled."""
        self.die_after = answered

        def watch() -> None:
            while not (self.answered >= answered and self.in_flight >= in_flight):
                time.sleep(0.005)
            self.kill()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def kill(self) -> None:
        """Die as a killed process does: stop listening, and drop every request in flight without an answer."""
        with self.lock:
            self.dead = True
            self.lock.notify_all()
        self.stop()

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: bytes,
              headers: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        try:
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.records.append(Record(time.monotonic(), handler.path, body, dict(handler.headers), self.in_flight))
            action = self.fail.pop(0) if self.fail else None
            self.lock.notify_all()
            if len(self.records) <= self.gate:
                self.lock.wait_for(lambda: self.in_flight >= self.gate, timeout=10)
        try:
            if isinstance(action, str) and action.startswith("sleep:"):
                time.sleep(float(action.split(":", 1)[1]))
                action = None
            if self.delay:
                time.sleep(self.delay)
            if self.dead:  # the connection closes with no response: the client sees it reset
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(action, int):
                headers = {"Retry-After": "0"} if action == 503 else None
                message = json.dumps({"error": {"message": f"scripted {action}"}}).encode()
                self._send(handler, action, message, headers)
                return
            if action == "not-json":
                self._send(handler, 200, b"<html>gateway</html>")
                return
            if action == "malformed":
                self._send(handler, 200, json.dumps({"id": "x", "object": "text_completion"}).encode())
                return
            if action == "no-content":
                payload = {"choices": [{"index": 0, "message": {"role": "assistant"}}]}
                self._send(handler, 200, json.dumps(payload).encode())
                return
            texts = self.responder(body)
            if self.max_choices is not None:
                texts = texts[:self.max_choices]
            chat = handler.path.endswith("/chat/completions")
            choices = [{"index": i, "finish_reason": self.finish_reason,
                        **({"message": {"role": "assistant", "content": t}} if chat else {"text": t})}
                       for i, t in enumerate(texts)]
            payload = {"id": "cmpl-test", "object": "chat.completion" if chat else "text_completion",
                       "model": body.get("model"), "choices": choices,
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            with self.lock:  # counted before sending: the client may act on the answer at once
                hold = self.die_after is not None and self.answered >= self.die_after
                if hold:  # about to be killed: this request stays in flight until the kill drops it
                    self.lock.wait_for(lambda: self.dead, timeout=30)
                else:
                    self.answered += 1
            if hold:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(handler, 200, json.dumps(payload).encode())
        finally:
            with self.lock:
                self.in_flight -= 1

