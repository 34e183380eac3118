"""Load on `guardkit serve` over loopback: throughput and latency under 32 concurrent clients and under one.

    python -m benchmarks.bench_serve [--model GUARD_DIR] [--clients 32] [--seconds 30] [--single-seconds 10] [--output results.json]

Starts `guardkit serve` on 127.0.0.1 (a free port) in a subprocess, twice: with micro-batching (the
defaults: up to 32 texts per model call) and without it (`--max-batch-size 1`). Against each, `--clients`
concurrent clients send `POST /v1/moderations` with one policy-bench text each, as fast as answers come,
for `--seconds`; against the batching server one client then sends requests one at a time for
`--single-seconds`. Reports requests/s, p50 / p99 latency, errors (anything but 200; must be 0), the
mean batch the server formed (from /metrics), and the micro-batching gain: requests/s with batching
over requests/s without, same clients, same run. Clients run in this process, so on a small machine
they take CPU from the server. Without --model it trains a MiniLM TaskGuard on the jailbreak policy's
own examples for a few steps and exports it to int8 ONNX, the way a guard would be served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

STARTUP_SECONDS = 300
MAX_REQUESTS_PER_PHASE = 200_000


def policy_bench_texts() -> list[str]:
    from guardkit.evaluate.config import DEFAULT_POLICY_BENCH_DIR
    from guardkit.evaluate.harness import read_policy_bench

    return [row.text for path in sorted(Path(DEFAULT_POLICY_BENCH_DIR).glob("*.jsonl")) for row in read_policy_bench(path)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(model: Path, args, batching: bool):
    """A `guardkit serve` subprocess, up and answering /health; always stopped on the way out."""
    import httpx

    port = free_port()
    command = [
        sys.executable, "-m", "guardkit.cli", "serve", "--model", str(model), "--port", str(port), "--backend", args.backend,
        "--log-level", "warning", *(["--threads", str(args.threads)] if args.threads else []),
        *(["--max-wait-ms", str(args.max_wait_ms)] if batching else ["--max-batch-size", "1", "--max-wait-ms", "0"]),
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"guardkit serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"guardkit serve did not answer /health within {STARTUP_SECONDS} s")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection. A bare client: httpx costs the 2-core machine more
    CPU per request than the server's guard does, and the clients share the server's cores."""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def load(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """`clients` connections that each send one request and wait for its answer, until `seconds` have passed."""
    import httpx
    import numpy as np

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: list[str] = []
    rng = random.Random(clients)
    bodies = [json.dumps({"input": text}).encode() for text in texts]
    deadline = time.monotonic() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline and len(latencies) + len(errors) < MAX_REQUESTS_PER_PHASE:
                started = time.perf_counter()
                try:
                    status, answer = await asyncio.wait_for(_post(reader, writer, "/v1/moderations", rng.choice(bodies)), 60)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
                    errors.append(repr(error))
                    return
                if status == 200 and len(json.loads(answer)["results"]) == 1:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(f"{status}: {answer[:200]!r}")
        finally:
            writer.close()

    before = httpx.get(f"{url}/metrics", timeout=30).text
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    after = httpx.get(f"{url}/metrics", timeout=30).text
    milliseconds = np.array(latencies) * 1000
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies),
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(milliseconds, 50)) if latencies else None,
        "p99_ms": float(np.percentile(milliseconds, 99)) if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:3],
        "mean_batch_texts": _mean_batch(before, after),
    }


def _mean_batch(before: str, after: str) -> float | None:
    """Texts per model call during a phase, from the server's /metrics before and after it."""

    def counters(text: str) -> dict[str, float]:
        pattern = r"^(guardkit_texts_total|guardkit_model_calls_total) (\S+)$"
        return {name: float(value) for name, value in re.findall(pattern, text, re.MULTILINE)}

    start, end = counters(before), counters(after)
    calls = end["guardkit_model_calls_total"] - start["guardkit_model_calls_total"]
    return (end["guardkit_texts_total"] - start["guardkit_texts_total"]) / calls if calls else None


def prepare_guard(workdir: Path, max_disagreement: float) -> Path:
    from benchmarks.bench_evaluate import train_quick_guard
    from benchmarks.bench_onnx import QUICK_GUARD, export

    trained = train_quick_guard(workdir, **QUICK_GUARD)
    export(trained, workdir / "int8", "int8", max_disagreement)
    return workdir / "int8"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="guard folder to serve (default: a quick MiniLM TaskGuard exported to int8)")
    parser.add_argument("--backend", default="auto", help="--backend of guardkit serve")
    parser.add_argument("--threads", type=int, default=0, help="--threads of guardkit serve (0: its default)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="--max-wait-ms of the batching server")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the loaded phases")
    parser.add_argument("--seconds", type=float, default=30, help="length of each loaded phase")
    parser.add_argument("--single-seconds", type=float, default=10, help="length of the one-client phase")
    parser.add_argument("--max-disagreement", type=float, default=0.05, help="the quick guard's export --max_disagreement (see bench_onnx)")
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    texts = policy_bench_texts()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as workdir:
        model = Path(args.model) if args.model else prepare_guard(Path(workdir), args.max_disagreement)
        results: dict = {"model": args.model or "quick MiniLM TaskGuard, int8 ONNX", "cpu_count": os.cpu_count(), "texts": len(texts)}
        with server(model, args, batching=True) as url:
            asyncio.run(load(url, texts, 4, 3))  # warm-up
            results["load_average_before"] = os.getloadavg()[0]
            results["batched"] = asyncio.run(load(url, texts, args.clients, args.seconds))
            results["single_client"] = asyncio.run(load(url, texts, 1, args.single_seconds))
        with server(model, args, batching=False) as url:
            asyncio.run(load(url, texts, 4, 3))
            results["unbatched"] = asyncio.run(load(url, texts, args.clients, args.seconds))
        results["load_average_after"] = os.getloadavg()[0]
    results["batching_gain"] = results["batched"]["requests_per_second"] / results["unbatched"]["requests_per_second"]
    results["errors"] = sum(results[phase]["errors"] for phase in ("batched", "single_client", "unbatched"))
    print(json.dumps(results, indent=2))
    for phase in ("batched", "unbatched", "single_client"):
        row = results[phase]
        print(
            f"{phase}: {row['clients']} client(s), {row['requests_per_second']:.1f} requests/s, p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, errors {row['errors']}, mean batch {row['mean_batch_texts']:.1f} texts"
        )
    print(f"micro-batching gain at {args.clients} clients: {results['batching_gain']:.2f}x")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if results["errors"]:
        sys.exit(f"{results['errors']} requests failed; the server must answer every one")
    return results


if __name__ == "__main__":
    main()
