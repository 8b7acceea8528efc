"""SDK benchmark: the app-thread cost of ``meterline.record()`` beside an OpenTelemetry span, and
sustained throughput from 8 app threads. One run, side by side, medians (this machine is noisy).

1. cost — the time one ``record()`` takes on the app's thread (p50/p99 µs, ``perf_counter_ns``
   around each single call), against an OpenTelemetry SDK span carrying the same attributes
   (``start_span(attributes=…)`` + ``end()``) through a ``BatchSpanProcessor`` and the OTLP/HTTP
   exporter, i.e. what an OTel-based instrumentation costs the app. Calls are timed in rounds of
   1,000, each followed by a flush outside the timing, so neither side measures a full queue; both
   ship to the same local sink, in its own process so it does not share this one's GIL.
2. throughput — 8 app threads offering 22,000 records/s in all (10 % above the 20,000 target;
   paced in 10 ms ticks) for a fixed duration: records/s recorded, what the sink received, drops,
   and this process's RSS sampled every 0.25 s (it must stay flat: a bounded queue, nothing kept).
3. headroom — one thread recording a burst of 100,000 as fast as it can (into a queue that holds
   them all): records/s until the sink acknowledged the last, the consumer thread's ceiling.

    .venv/bin/python bench/sdk.py [--rounds 50] [--seconds 10] [--threads 8] [--rate 22000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import socket
import statistics
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_P50_US = 5.0
TARGET_RATIO = 5.0  # record() at most 1/5 of a span
TARGET_RATE = 20_000.0

FIELDS: dict[str, Any] = {
    "provider": "openai", "model": "gpt-4o", "input_tokens": 1200, "cache_read_tokens": 800,
    "output_tokens": 350, "reasoning_tokens": 0, "ttft_ms": 420.0, "latency_ms": 2900.0,
    "feature": "chat-assistant", "customer_id": "acme-corp",
}  # fmt: skip
SPAN_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 800, "gen_ai.usage.output_tokens": 350,
    "gen_ai.usage.reasoning.output_tokens": 0, "gen_ai.response.time_to_first_chunk": 0.42,
    "gen_ai.client.operation.duration": 2.9, "app.feature": "chat-assistant", "app.customer_id": "acme-corp",
}  # fmt: skip


# -- the sink (its own process) ----------------------------------------------------------------


def _sink(port_out: Any) -> None:
    counts = {"calls": 0, "spans_requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # The answer goes out in two writes (head, body): without this, Nagle's algorithm and
            # the client's delayed ACK hold the second one back ~40 ms, and the sink would be the bottleneck.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v1/calls":
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                n = len(json.loads(raw)["calls"])
                with lock:
                    counts["calls"] += n
                answer = json.dumps({"batch_id": "x", "accepted": n, "rejected": []}).encode()
                status = 202
            else:  # /v1/traces: OTLP protobuf; an empty ExportTraceServiceResponse is an empty body
                with lock:
                    counts["spans_requests"] += 1
                answer, status = b"", 200
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            with lock:
                answer = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.send(server.server_address[1])
    server.serve_forever()


def sink_counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/counts", timeout=10) as answer:
        result: dict[str, int] = json.loads(answer.read())
    return result


# -- 1. cost per call --------------------------------------------------------------------------


def percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def time_calls(call: Any, flush: Any, rounds: int, per_round: int = 1000) -> list[int]:
    perf = time.perf_counter_ns
    samples: list[int] = []
    for _ in range(rounds):
        for _ in range(per_round):
            t0 = perf()
            call()
            samples.append(perf() - t0)
        flush()
    return samples


def bench_cost(url: str, rounds: int) -> tuple[list[int], list[int], list[int]]:
    import meterline
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    client = meterline.init(api_key="bench", endpoint=url, max_queue=100_000)
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("bench")

    def record() -> None:
        meterline.record(**FIELDS)

    def span() -> None:
        tracer.start_span("chat gpt-4o", attributes=SPAN_ATTRIBUTES).end()

    def nothing() -> None:
        pass

    for _ in range(3):  # warm up both, then interleave their rounds so noise hits both alike
        time_calls(record, client.flush, 1)
        time_calls(span, provider.force_flush, 1)
    base, rec, otel = [], [], []
    for _ in range(rounds):
        base += time_calls(nothing, lambda: None, 1)
        rec += time_calls(record, client.flush, 1)
        otel += time_calls(span, provider.force_flush, 1)
    assert client.flush(30)
    dropped = client.counts()["dropped"]
    meterline.shutdown(10)
    provider.shutdown()
    if dropped:
        print(f"  (record() dropped {dropped} during the cost phase)")
    return base, rec, otel


# -- 2. throughput -----------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_throughput(url: str, seconds: float, threads: int, rate: float) -> dict[str, Any]:
    import meterline

    before = sink_counts(url)["calls"]
    client = meterline.init(api_key="bench", endpoint=url)
    per_tick = max(1, round(rate / threads / 100))  # 100 ticks of 10 ms a second
    stop = threading.Event()
    offered = [0] * threads

    def app(index: int) -> None:
        record = meterline.record
        fields = dict(FIELDS, request_id=f"t{index}")
        next_tick = time.perf_counter()
        while not stop.is_set():
            for _ in range(per_tick):
                record(**fields)
            offered[index] += per_tick
            next_tick += 0.01
            pause = next_tick - time.perf_counter()
            if pause > 0:
                time.sleep(pause)

    rss = [rss_mb()]
    workers = [threading.Thread(target=app, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    while time.perf_counter() - start < seconds:
        time.sleep(0.25)
        rss.append(rss_mb())
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    flush_start = time.perf_counter()
    flushed = client.flush(60)
    flush_ms = (time.perf_counter() - flush_start) * 1000
    counts = client.counts()
    meterline.shutdown(10)
    received = sink_counts(url)["calls"] - before
    return {
        "offered": sum(offered), "received": received, "elapsed": elapsed, "flushed": flushed, "flush_ms": flush_ms,
        "dropped": counts["dropped"], "rss": rss,
    }  # fmt: skip


def bench_ceiling(url: str, records: int) -> float:
    """Records/s from ``record()`` to the sink's 202 with one app thread recording a burst as fast as
    it can into a queue large enough to hold it all: the consumer thread's ceiling."""
    import meterline

    client = meterline.init(api_key="bench", endpoint=url, max_queue=records)
    start = time.perf_counter()
    for _ in range(records):
        meterline.record(**FIELDS)
    assert client.flush(120)
    elapsed = time.perf_counter() - start
    assert client.counts()["sent"] == records
    meterline.shutdown(10)
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50, help="rounds of 1,000 timed calls each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    # 10 % above the target: pacing in 10 ms ticks and thread start-up cost the offered rate a little.
    parser.add_argument("--rate", type=float, default=TARGET_RATE * 1.1, help="records/s offered in all")
    args = parser.parse_args()

    ours, theirs = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=_sink, args=(theirs,), daemon=True)
    sink.start()
    url = f"http://127.0.0.1:{ours.recv()}"
    try:
        print(f"SDK benchmark — {os.cpu_count()} CPUs, Python {platform.python_version()}")
        base, rec, otel = bench_cost(url, args.rounds)
        overhead = statistics.median(base) / 1000
        r50, r99 = percentile(rec, 0.5), percentile(rec, 0.99)
        o50, o99 = percentile(otel, 0.5), percentile(otel, 0.99)
        print(f"\n1. app-thread cost per call, {len(rec):,} single calls each (timer overhead {overhead:.2f} µs incl.)")
        print(f"   {'':34} {'p50 µs':>8} {'p99 µs':>8}")
        print(f"   {'meterline.record()':34} {r50:8.2f} {r99:8.2f}")
        print(f"   {'OTel span + BatchSpanProcessor/OTLP':34} {o50:8.2f} {o99:8.2f}")
        ratio = o50 / r50 if r50 else float("inf")
        print(f"   span / record() at p50: {ratio:.1f}x  (target ≥ {TARGET_RATIO:.0f}x)  "
              f"record() p50 {'≤' if r50 <= TARGET_P50_US else '>'} {TARGET_P50_US:.0f} µs target")  # fmt: skip

        result = bench_throughput(url, args.seconds, args.threads, args.rate)
        rate = result["offered"] / result["elapsed"]
        rss = result["rss"]
        print(f"\n2. sustained: {args.threads} app threads offering {args.rate:,.0f} records/s, {args.seconds:.0f} s")
        print(f"   recorded {result['offered']:,} in {result['elapsed']:.2f} s → {rate:,.0f} records/s "
              f"(target {TARGET_RATE:,.0f}); the sink received {result['received']:,}")  # fmt: skip
        print(f"   dropped {result['dropped']}; the backlog left at the end flushed in {result['flush_ms']:.0f} ms "
              f"({result['flushed']})")  # fmt: skip
        quarter = max(1, len(rss) // 4)
        print(f"   RSS MB: start {rss[0]:.1f}  first-quarter median {statistics.median(rss[:quarter]):.1f}  "
              f"last-quarter median {statistics.median(rss[-quarter:]):.1f}  peak {max(rss):.1f}")  # fmt: skip
        ceiling = bench_ceiling(url, 100_000)
        print(f"\n3. headroom: one thread recording 100,000 as fast as it can → {ceiling:,.0f} records/s delivered")
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
