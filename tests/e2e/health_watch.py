"""Asks a service's /health every 20 ms until its standard input closes, then prints the slowest answer and how many
it got, as JSON. A process of its own, so that the watch is not slowed down by the test process's own work
(generating documents holds the GIL for long stretches): ``python -m tests.e2e.health_watch http://127.0.0.1:PORT``.

Beside it, ``stalled``: the longest this process itself was kept from running (a thread that sleeps 5 ms at a time
and notes how late it wakes up), the machine's share of any slow answer rather than the service's."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def main() -> None:
    url = urlsplit(sys.argv[1])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stalled = [0.0]

    def oversleep() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            time.sleep(0.005)
            stalled[0] = max(stalled[0], time.perf_counter() - started - 0.005)

    threading.Thread(target=oversleep, daemon=True).start()
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
    slowest, asked, failed = 0.0, 0, 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failed += 1
        except OSError:
            failed += 1
            connection.close()
        slowest = max(slowest, time.perf_counter() - started)
        asked += 1
        stop.wait(0.02)
    print(json.dumps({"slowest": slowest, "asked": asked, "failed": failed, "stalled": stalled[0]}), flush=True)


if __name__ == "__main__":
    main()
