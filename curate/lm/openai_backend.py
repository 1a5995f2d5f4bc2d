"""The `openai` backend: any server that speaks the OpenAI completions or chat-completions API.

vLLM (`vllm serve`), SGLang, llama.cpp's server, TGI and hosted APIs all do. Only the
standard library is used (`urllib`), with a thread pool for concurrency.

- The API key is read from an environment variable (`--api-key-env`, default
  `OPENAI_API_KEY`) at the moment each request is sent. It is never an attribute of the
  backend, never part of its identity, of provenance, of a cache key, of a log line or of
  an error message. A base URL with credentials in it is refused for the same reason.
- Requests that fail with 429, a 5xx status, a timeout or a connection error are retried
  with exponential backoff (equal jitter: the delay is between half and all of
  `backoff * 2**attempt`, capped at `backoff_max`; a `Retry-After` header in seconds is
  honoured up to the cap) at most `max_retries` times. Other statuses fail at once with
  the server's message.
- Several servers (`--base-url` repeated; `curate.lm.servers`): each request goes to the live
  server with the fewest in flight; a request that fails on one server is sent again at once
  to another (a dead server's in-flight requests move to the live ones), and the backoff
  above applies only when every server is failing. `concurrency` is per server. Results are
  yielded once per prompt whichever server answered, so the request cache records each once.
- At most `concurrency` requests are in flight. `timeout` bounds the connection and each
  read of one request.
- A 200 response that is not the expected JSON is a clear `BackendError`, never retried:
  it means the server speaks another protocol.
- Each prompt is sent with its own seed, derived from the base seed and the prompt, and
  asks for its n samples in one request; a server that returns fewer choices is asked for
  the rest.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from curate import __version__
from curate.errors import BadUsage, CurateError
from curate.lm.generation import Completion, SamplingParams, _cut_at_stop
from curate.lm.identity import BackendIdentity, canonical, derive_seed
from curate.lm.servers import ServerPool
from curate.lm.templates import Prompt, as_messages, check_template

ENDPOINTS = ("chat", "completions")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class BackendError(CurateError):
    """A generation server that cannot be reached, refuses, or answers in another protocol."""


@dataclass(frozen=True)
class OpenAISettings:
    """How to reach the server: the one place these settings and their defaults are written
    (`BackendOptions` extends it; the CLI's --base-url, --endpoint, ... read their defaults here)."""

    base_url: str | tuple[str, ...] | None = None  # several: requests spread over them (curate.lm.servers)
    endpoint: str = "chat"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 6
    backoff: float = 1.0
    backoff_max: float = 60.0
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenAIConfig(OpenAISettings):
    """The settings, and the model the server serves."""

    model: str = ""
    revision: str | None = None
    template: str = "auto"


@dataclass
class RequestStats:
    """What the backend did, for tests and the run summary (thread-safe through `lock`)."""

    requests: int = 0
    retries: int = 0
    delays: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retries: int = 0, delay: float | None = None) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries
            if delay is not None:
                self.delays.append(delay)


def clean_base_url(url: str) -> str:
    """The base URL without a trailing slash; refuses URLs that carry credentials or are not http(s)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUsage(f"--base-url {url!r} is not an http(s) URL", hint="e.g. --base-url http://localhost:8000/v1")
    if parts.username or parts.password:
        raise BadUsage("--base-url must not hold credentials",
                       hint="put the key in an environment variable and name it with --api-key-env")
    if parts.query or parts.fragment:
        raise BadUsage(f"--base-url {parts.scheme}://{parts.netloc}{parts.path} must have no query or fragment",
                       hint="pass the API root, e.g. http://localhost:8000/v1")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _resolve_template(template: str, endpoint: str) -> str:
    check_template(template)
    if template == "auto":
        return "chat" if endpoint == "chat" else "raw"
    if endpoint == "chat" and template != "chat":
        raise BadUsage(f"--template {template} cannot be used with --endpoint chat: the server applies its own "
                       "chat template",
                       hint="use --endpoint completions for raw or plain prompts")
    if endpoint == "completions" and template == "chat":
        raise BadUsage("--template chat needs --endpoint chat",
                       hint="the completions endpoint takes text; use --endpoint chat")
    return template


def _render_text(prompt: Prompt, template: str) -> str:
    if isinstance(prompt, str):
        return prompt if template == "raw" else prompt + "\n"
    lines = [f"{m['role'].capitalize()}: {m['content'] or ''}" for m in as_messages(prompt)]
    return "\n".join(lines) + "\nAssistant: "


def _server_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if isinstance(payload, dict) and payload.get("message"):
            return str(payload["message"])[:300]
    except ValueError:
        pass
    return text[:300] or "(empty body)"


class OpenAIBackend:
    """Generation through an OpenAI-compatible HTTP server."""

    name = "openai"

    def __init__(self, config: OpenAIConfig):
        if config.endpoint not in ENDPOINTS:
            raise BadUsage(f"--endpoint {config.endpoint!r} is not an endpoint", hint="endpoints: chat, completions")
        for option, value, low in (("--concurrency", config.concurrency, 1), ("--max-retries", config.max_retries, 0)):
            if value < low:
                raise BadUsage(f"{option} must be at least {low}, not {value}")
        if config.timeout <= 0:
            raise BadUsage(f"--timeout must be positive, not {config.timeout}")
        if not config.base_url:
            raise BadUsage("--backend openai needs --base-url",
                           hint="e.g. --base-url http://localhost:8000/v1 (vLLM serve, SGLang, llama.cpp server)")
        if not config.model:
            raise BadUsage("--model is empty", hint="name the model the server serves (GET BASE_URL/models lists them)")
        self.config = config
        urls = [config.base_url] if isinstance(config.base_url, str) else list(config.base_url)
        if not urls:
            raise BadUsage("--backend openai needs --base-url", hint="e.g. --base-url http://localhost:8000/v1")
        self.base_urls = list(dict.fromkeys(clean_base_url(url) for url in urls))
        self.base_url = self.base_urls[0]
        self.template = _resolve_template(config.template, config.endpoint)
        path = "/chat/completions" if config.endpoint == "chat" else "/completions"
        self.servers = ServerPool([url + path for url in self.base_urls], cooloff=config.backoff,
                                  cooloff_max=config.backoff_max)
        self.url = self.servers.urls[0]
        self.workers = config.concurrency * len(self.base_urls)  # requests in flight at most, over all servers
        self.stats = RequestStats()
        self.identity = BackendIdentity(backend="openai", model=config.model, model_hash=None,
                                        revision=config.revision, template=self.template,
                                        endpoint=config.endpoint, base_url=",".join(self.base_urls))
        self._sleep = time.sleep
        self._random = random.Random()

    def chunk_size(self, n: int) -> int:
        return max(1, self.workers) * 4

    # -- the protocol ---------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        results: list[list[Completion]] = [[] for _ in prompts]
        for index, completions in self.stream(prompts, n, sampling):
            results[index] = completions
        return results

    def stream(self, prompts: Sequence[Prompt], n: int,
               sampling: SamplingParams) -> Iterator[tuple[int, list[Completion]]]:
        """(prompt index, its n completions) as requests finish; at most `concurrency` in flight."""
        if n < 1:
            raise BadUsage(f"n must be at least 1, not {n}")
        if sampling.temperature <= 0 and n > 1:
            raise BadUsage(f"greedy decoding (temperature 0) with n={n} gives {n} identical completions",
                           hint="raise --temperature or ask for one sample")
        if not prompts:
            return
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="curate-openai")
        pending: dict[Future, int] = {}
        queue = iter(range(len(prompts)))
        try:
            for index in queue:
                pending[pool.submit(self._sample, prompts[index], n, sampling)] = index
                if len(pending) >= self.workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    completions = future.result()
                    for sample, completion in enumerate(completions):
                        completion.prompt_index, completion.sample_index = index, sample
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(self._sample, prompts[nxt], n, sampling)] = nxt
                    yield index, completions
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    # -- one prompt -----------------------------------------------------------------------------------------------
    def _sample(self, prompt: Prompt, n: int, sampling: SamplingParams) -> list[Completion]:
        seed = derive_seed(sampling.seed, "openai", canonical(prompt))
        out: list[Completion] = []
        for attempt in range(n):  # a server that ignores `n` is asked for the rest
            missing = n - len(out)
            choices = self._request(self._body(prompt, missing, sampling, seed if attempt == 0 else
                                               derive_seed(seed, "more", len(out))))
            out.extend(choices[:missing])
            if len(out) >= n:
                break
        return out

    def _body(self, prompt: Prompt, n: int, sampling: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "n": n, "max_tokens": sampling.max_new_tokens,
                                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": seed}
        if self.config.endpoint == "chat":
            body["messages"] = as_messages(prompt)
        else:
            body["prompt"] = _render_text(prompt, self.template)
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        body.update(self.config.extra_body)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"curate/{__version__}"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = "Bearer " + key
        return headers

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.config.backoff_max, max(0.0, float(retry_after)))
            except ValueError:
                pass
        ceiling = min(self.config.backoff_max, self.config.backoff * (2 ** attempt))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _request(self, body: dict[str, Any]) -> list[Completion]:
        data = json.dumps(body).encode("utf-8")
        last, url, failed_on = "", self.url, set()
        delay = 0.0
        for attempt in range(self.config.max_retries + 1):
            url, live = self.servers.acquire(avoid=failed_on)
            if attempt and (not live or url in failed_on):  # no other server to turn to: back off first
                self.stats.add(delay=delay)
                self._sleep(delay)
            self.stats.add(requests=1)
            retry_after, ok = None, False
            try:
                request = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    raw = response.read()
                ok = True
                return self._parse(raw, body, url)
            except urllib.error.HTTPError as exc:
                raw = exc.read() if exc.fp is not None else b""
                message = _server_message(raw)
                ok = exc.code not in RETRY_STATUS  # the server is up; the request itself is refused
                if ok:
                    raise self._refused(exc.code, message, url) from None
                last = f"HTTP {exc.code}: {message}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (TimeoutError, socket.timeout)) or isinstance(exc, TimeoutError):
                    last = f"no answer within --timeout {self.config.timeout:g}s"
                else:
                    last = f"{type(reason).__name__}: {reason}"
            finally:
                self.servers.release(url, ok)
            failed_on.add(url)
            if attempt == self.config.max_retries:
                break
            delay = self._delay(attempt, retry_after)
            self.stats.add(retries=1)
        where = url if len(self.base_urls) == 1 else f"{len(self.base_urls)} servers (last {url})"
        raise BackendError(f"{where}: gave up after {self.config.max_retries + 1} attempts; last error: {last}",
                           hint="check that the server is up and not overloaded; raise --max-retries or --timeout")

    def _refused(self, status: int, message: str, url: str) -> BackendError:
        hints = {401: f"the server refused the API key: set ${self.config.api_key_env} (or name another variable "
                      "with --api-key-env)",
                 403: f"the key in ${self.config.api_key_env} may not use model {self.config.model}",
                 404: "check --base-url (the API root, usually ending in /v1), --endpoint and --model",
                 400: "the server rejected the request: check --model and the sampling options it supports"}
        return BackendError(f"{url}: HTTP {status}: {message}",
                            hint=hints.get(status, "see the server's log for details"))

    def _parse(self, raw: bytes, body: dict[str, Any], url: str) -> list[Completion]:
        def malformed(what: str) -> BackendError:
            snippet = raw[:200].decode("utf-8", "replace")
            return BackendError(f"malformed response from {url}: {what}; the body starts with {snippet!r}",
                                hint="is --base-url an OpenAI-compatible API root, and --endpoint the right one?")

        try:
            payload = json.loads(raw)
        except ValueError:
            raise malformed("it is not JSON") from None
        if not isinstance(payload, dict):
            raise malformed("it is not a JSON object")
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise malformed("'choices' is missing or empty")
        out = []
        ordered = sorted(enumerate(choices), key=lambda item: (item[1].get("index", item[0])
                                                               if isinstance(item[1], dict) else item[0]))
        for position, choice in ordered:
            if not isinstance(choice, dict):
                raise malformed(f"choices[{position}] is not an object")
            if self.config.endpoint == "chat":
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else None
                where = f"choices[{position}].message.content"
            else:
                text = choice.get("text")
                where = f"choices[{position}].text"
            if not isinstance(text, str):
                raise malformed(f"{where} is missing or not a string")
            finish = choice.get("finish_reason") or "stop"
            if not isinstance(finish, str):
                raise malformed(f"choices[{position}].finish_reason is not a string")
            token_ids = choice.get("token_ids")
            if not (isinstance(token_ids, list) and all(isinstance(t, int) for t in token_ids)):
                token_ids = []
            text, stopped = _cut_at_stop(text, body.get("stop") or ())
            out.append(Completion(text, list(token_ids), "stop" if stopped else finish))
        return out
