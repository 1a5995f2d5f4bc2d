"""Several inference servers behind one backend: which one gets the next request.

`curate ... --backend openai --base-url URL1 --base-url URL2 ...` (vLLM `serve` instances,
data-parallel replicas or not) spreads requests over the servers: each request goes to the
live server with the fewest requests in flight (ties in turn), so a slow server gets fewer.
A server whose request fails (connection refused or reset, timeout, 429 or 5xx) is
avoided for a cool-off that doubles with each consecutive failure (from `cooloff` up to
`cooloff_max`) and is tried again when it ends; a success clears it. The failed request is
sent again at once to another live server, and only when every server is cooling off does
the caller back off before its next attempt. This is client-side load balancing as in
gRPC's least-request policy with passive health checks (outlier ejection), kept in the
standard library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass


@dataclass
class _Server:
    url: str
    in_flight: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0
    sent: int = 0


class ServerPool:
    """Thread-safe choice of a server per request, with passive health tracking."""

    def __init__(self, urls: Sequence[str], cooloff: float = 1.0, cooloff_max: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise ValueError("a server pool needs at least one URL")
        self.servers = [_Server(url) for url in urls]
        self.cooloff, self.cooloff_max, self.clock = cooloff, cooloff_max, clock
        self.lock = threading.Lock()
        self.turn = 0

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def acquire(self, avoid: Collection[str] = ()) -> tuple[str, bool]:
        """(the server for the next request, whether it is live). Prefers live servers not in `avoid`
        (those that already failed this request), then any live one, then the one back soonest."""
        with self.lock:
            now = self.clock()
            live = [s for s in self.servers if s.down_until <= now]
            fresh = [s for s in live if s.url not in avoid]
            candidates = fresh or live
            if candidates:
                n = len(self.servers)
                order = {id(s): (i - self.turn) % n for i, s in enumerate(self.servers)}
                chosen = min(candidates, key=lambda s: (s.in_flight, order[id(s)]))
                self.turn = (self.servers.index(chosen) + 1) % n
            else:
                chosen = min(self.servers, key=lambda s: s.down_until)
            chosen.in_flight += 1
            chosen.sent += 1
            return chosen.url, bool(candidates)

    def release(self, url: str, ok: bool) -> None:
        """The request sent to `url` ended: a success clears the server, a failure starts (or doubles) its cool-off."""
        with self.lock:
            server = next(s for s in self.servers if s.url == url)
            server.in_flight -= 1
            if ok:
                server.failures, server.down_until = 0, 0.0
            else:
                server.failures += 1
                pause = min(self.cooloff_max, self.cooloff * 2 ** (server.failures - 1))
                server.down_until = max(server.down_until, self.clock() + pause)

    def sent(self) -> dict[str, int]:
        """Requests sent to each server so far."""
        with self.lock:
            return {s.url: s.sent for s in self.servers}
