"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next
request when the previous answer is read. Raw asyncio streams keep the client's own CPU cost low,
which matters when client and server share two cores."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


async def _client(host: str, port: int, paths: list[str], deadline: float, rng: random.Random,
                  latencies: list[float], errors: list[int]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            path = rng.choice(paths)
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - start) * 1000)
            if not status_line.startswith(b"HTTP/1.1 2"):
                errors.append(1)
    finally:
        writer.close()


async def _run(host: str, port: int, paths: list[str], clients: int, seconds: float, seed: int) -> LoadResult:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(
        _client(host, port, paths, start + seconds, random.Random(seed + i), latencies, errors)
        for i in range(clients)
    ))  # fmt: skip
    return LoadResult(len(latencies), len(errors), time.perf_counter() - start, latencies)


def run_load(host: str, port: int, paths: list[str], clients: int = 50, seconds: float = 10, seed: int = 0) -> LoadResult:
    return asyncio.run(_run(host, port, paths, clients, seconds, seed))
