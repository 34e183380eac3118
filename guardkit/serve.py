"""`guardkit serve`: a guard behind an HTTP API that OpenAI's moderation clients call unchanged.

Endpoints (FastAPI on uvicorn):
- `POST /v1/moderations`: OpenAI's request and response shape. `input` is a string or a list of strings;
  each result has `flagged`, `categories` and `category_scores` keyed by the guard's policy ids.
- `POST /v1/check`: guardkit verdicts (text_index, policy, label, score, threshold) under chosen policies:
  ids, or whole custom policies in the policy YAML schema as JSON objects (pair guards score those
  from their instruction).
- `GET /v1/models`, `GET /health` (never behind the key, for load balancer probes), `GET /metrics`
  (Prometheus text format: requests, errors, latency histogram, batch sizes, model calls).

Scores and verdicts come from `Guard.check`, each policy at its own stored threshold. Concurrent requests
are micro-batched: one scoring thread takes the texts of every waiting request (up to `max_batch_size`
texts, waiting at most `max_wait_ms` for more) and checks those that share policies in one call, so a
loaded server runs at batched throughput. Limits answer 413 before any scoring: a request body above
`max_body_bytes`, more than `max_texts` texts, a text longer than `max_chars` characters, or more than
`max_request_chars` characters in all; with these a request's scoring time is bounded and one request
cannot stall the rest for long. Errors are OpenAI-shaped JSON: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hmac
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations in this namespace

from guardkit.errors import GuardkitError
from guardkit.guard import Guard, Verdict, _local_folder, read_manifest
from guardkit.onnx_runtime import BACKENDS, THREADS_ENV, choose_backend
from guardkit.policies import Policy

CONFIG_ENV = "GUARDKIT_SERVE_CONFIG"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
logger = logging.getLogger("guardkit.serve")


class ServeError(GuardkitError):
    """A server that cannot start with these options; the message says which and why."""


@dataclass
class ServeConfig:
    model: str = field(metadata={"help": "guard folder (written by `guardkit train`, `merge` or `export`) or Hub model id"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision when --model is a Hub id"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0 for every interface)"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    workers: int = field(default=1, metadata={"help": "uvicorn worker processes, each with its own copy of the guard"})
    backend: str = field(
        default="auto",
        metadata={
            "choices": list(BACKENDS),
            "help": "torch, onnx (a folder written by `guardkit export`), or auto: onnx when there is one",
        },
    )
    threads: int | None = field(default=None, metadata={"help": "CPU threads per worker for the model (default: torch's, one per core)"})
    max_batch_size: int = field(default=32, metadata={"help": "texts scored together at most; 1 turns micro-batching off"})
    max_wait_ms: float = field(default=2.0, metadata={"help": "how long a batch waits for more requests before it is scored"})
    forward_batch_size: int = field(
        default=8,
        metadata={
            "help": "windows per forward pass within a batch (sorted by length first); small values pad mixed-length "
            "traffic less, which on CPUs outweighs bigger matrix products"
        },
    )
    max_texts: int = field(default=32, metadata={"help": "texts per request at most (more: 413)"})
    max_chars: int = field(
        default=4000,
        metadata={"help": "characters per text at most; a longer text is refused with 413 naming the limit, never cut (split it yourself)"},
    )
    max_request_chars: int = field(default=16000, metadata={"help": "characters in all the texts of one request at most (more: 413)"})
    max_body_bytes: int = field(default=262144, metadata={"help": "request body size at most, in bytes (more: 413)"})
    api_key_env: str | None = field(
        default=None,
        metadata={
            "help": "name of an environment variable holding an API key; requests must then send `Authorization: Bearer KEY` "
            "(the key itself is never a flag and never logged)"
        },
    )
    served_model_name: str | None = field(
        default=None, metadata={"help": "model name in responses and /v1/models (default: the Hub id or the folder's name)"}
    )
    log_level: str = field(
        default="info", metadata={"choices": ["critical", "error", "warning", "info", "debug"], "help": "uvicorn log level"}
    )

    def validate(self) -> None:
        for name in ("workers", "max_batch_size", "forward_batch_size", "max_texts", "max_chars", "max_request_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ServeError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ServeError(f"--threads must be at least 1, got {self.threads}")
        if self.max_wait_ms < 0:
            raise ServeError(f"--max_wait_ms cannot be negative, got {self.max_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port must lie in 0-65535, got {self.port}")
        if self.api_key_env is not None and not os.environ.get(self.api_key_env):
            raise ServeError(f"--api_key_env {self.api_key_env}: that environment variable is not set or empty; export it first")


class RequestError(Exception):
    """A request the server refuses: HTTP status, OpenAI error type, message, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.error_type = status, message, param, error_type


# -- metrics ---------------------------------------------------------------------------------------


class Histogram:
    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        lines, running = [], 0
        for bound, count in zip([*map(str, self.buckets), "+Inf"], self.counts):
            running += count
            lines.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{bound}"}} {running}')
        own = f"{{{labels}}}" if labels else ""
        return [*lines, f"{name}_sum{own} {self.sum}", f"{name}_count{own} {running}"]


class Metrics:
    """The server's counters and histograms, written out in the Prometheus text format (one per worker)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.model_calls = 0
        self.texts = 0

    def record_request(self, endpoint: str, status: int, seconds: float, error_type: str | None) -> None:
        with self.lock:
            self.requests[(endpoint, status)] += 1
            if error_type:
                self.errors[(endpoint, error_type)] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def record_batch(self, texts: int) -> None:
        with self.lock:
            self.model_calls += 1
            self.texts += texts
            self.batch_sizes.observe(texts)

    def render(self) -> str:
        with self.lock:
            lines = [
                "# HELP guardkit_requests_total HTTP requests answered, by endpoint and status code.",
                "# TYPE guardkit_requests_total counter",
                *(
                    f'guardkit_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
                    for (endpoint, status), count in sorted(self.requests.items())
                ),
                "# HELP guardkit_request_errors_total Requests answered with an error, by endpoint and error type.",
                "# TYPE guardkit_request_errors_total counter",
                *(
                    f'guardkit_request_errors_total{{endpoint="{endpoint}",type="{kind}"}} {count}'
                    for (endpoint, kind), count in sorted(self.errors.items())
                ),
                "# HELP guardkit_request_duration_seconds Time from request to response.",
                "# TYPE guardkit_request_duration_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines("guardkit_request_duration_seconds", f'endpoint="{endpoint}"')
            lines += [
                "# HELP guardkit_batch_size Texts scored together in one model call (micro-batching).",
                "# TYPE guardkit_batch_size histogram",
                *self.batch_sizes.lines("guardkit_batch_size", ""),
                "# HELP guardkit_model_calls_total Calls of Guard.check made by the batching thread.",
                "# TYPE guardkit_model_calls_total counter",
                f"guardkit_model_calls_total {self.model_calls}",
                "# HELP guardkit_texts_total Texts scored.",
                "# TYPE guardkit_texts_total counter",
                f"guardkit_texts_total {self.texts}",
            ]
        return "\n".join(lines) + "\n"


# -- micro-batching --------------------------------------------------------------------------------


@dataclass
class _Job:
    texts: list[str]
    policies: list[str | Policy] | None
    future: Future

    @property
    def key(self) -> tuple:
        """Jobs with the same key are checked in one call: same policies, in the same order."""
        if self.policies is None:
            return (None,)
        return tuple(policy if isinstance(policy, str) else ("custom", policy.model_dump_json()) for policy in self.policies)


class MicroBatcher:
    """One thread that checks the texts of concurrent requests together with `Guard.check`.

    `submit(texts, policies)` returns a Future of the verdicts of those texts (text_index counted within
    them). The thread takes the oldest job, then waits up to `max_wait_ms` for more until the batch holds
    `max_batch_size` texts (a job is never split, and never joins a batch it would overfill unless alone),
    and makes one `Guard.check` call per group of jobs that share their policies.
    """

    def __init__(self, guard: Guard, max_batch_size: int, max_wait_ms: float, forward_batch_size: int = 8, metrics: Metrics | None = None):
        self.guard = guard
        self.max_batch_size = max_batch_size
        self.forward_batch_size = forward_batch_size
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics or Metrics()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="guardkit-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], policies: list[str | Policy] | None = None) -> Future:
        if not self._thread.is_alive():
            raise RuntimeError("the batching thread has stopped")
        job = _Job(list(texts), policies, Future())
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        carried: _Job | None = None
        while True:
            first = carried or self._queue.get()
            carried = None
            if first is None:
                return
            jobs, size, stop = [first], len(first.texts), False
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch_size:
                try:
                    job = self._queue.get(timeout=max(deadline - time.monotonic(), 0)) if self.max_wait else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                if size + len(job.texts) > self.max_batch_size:
                    carried = job
                    break
                jobs.append(job)
                size += len(job.texts)
            self._check(jobs)
            if stop:
                return

    def _check(self, jobs: list[_Job]) -> None:
        groups: dict[tuple, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        for group in groups.values():
            texts = [text for job in group for text in job.texts]
            try:
                verdicts = self.guard.check(texts, group[0].policies, batch_size=self.forward_batch_size)
            except Exception as error:  # every waiting request hears of the failure
                for job in group:
                    job.future.set_exception(error)
                continue
            self.metrics.record_batch(len(texts))
            per_text = len(verdicts) // len(texts)
            offset = 0
            for job in group:
                own = verdicts[offset * per_text : (offset + len(job.texts)) * per_text]
                job.future.set_result([dataclasses.replace(verdict, text_index=verdict.text_index - offset) for verdict in own])
                offset += len(job.texts)


# -- requests --------------------------------------------------------------------------------------


def _texts(body: dict, config: ServeConfig) -> list[str]:
    """The request's `input` as a list of texts, within the limits."""
    if "input" not in body:
        raise RequestError(400, "missing 'input': a string or a list of strings", "input")
    raw = body["input"]
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list):
        raise RequestError(400, f"'input' must be a string or a list of strings, got {type(raw).__name__}", "input")
    if not texts:
        raise RequestError(400, "'input' is an empty list; send at least one text", "input")
    if len(texts) > config.max_texts:
        message = f"'input' has {len(texts)} texts; this server takes at most {config.max_texts} per request (max_texts)"
        raise RequestError(413, message, "input")
    total = 0
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            message = f"input[{index}] must be a string, got {type(text).__name__}; only text input is supported"
            raise RequestError(400, message, f"input[{index}]")
        if not text.strip():
            raise RequestError(400, f"input[{index}] is empty or only whitespace; there is nothing to check", f"input[{index}]")
        if len(text) > config.max_chars:
            raise RequestError(
                413,
                f"input[{index}] has {len(text)} characters; this server takes at most {config.max_chars} per text (max_chars). "
                "Split longer texts and send the parts",
                f"input[{index}]",
            )
        total += len(text)
    if total > config.max_request_chars:
        limit = config.max_request_chars
        message = f"'input' has {total} characters in all; this server takes at most {limit} per request (max_request_chars)"
        raise RequestError(413, message, "input")
    return texts


def _policies(body: dict) -> list[str | Policy] | None:
    """`policies` of a /v1/check request: None (all of the guard's), or ids and custom policy objects."""
    raw = body.get("policies")
    if raw is None:
        return None
    items = [raw] if isinstance(raw, (str, dict)) else raw
    if not isinstance(items, list) or not items:
        raise RequestError(400, "'policies' must be a policy id, a policy object, or a non-empty list of them", "policies")
    policies: list[str | Policy] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            policies.append(item)
        elif isinstance(item, dict):
            try:
                policies.append(Policy.from_dict(item, source=f"policies[{index}]"))
            except GuardkitError as error:
                raise RequestError(400, str(error), f"policies[{index}]") from None
        else:
            message = f"policies[{index}] must be a policy id or a policy object, got {type(item).__name__}"
            raise RequestError(400, message, f"policies[{index}]")
    return policies


def moderation_results(verdicts: list[Verdict], count: int) -> list[dict[str, Any]]:
    """OpenAI moderation results, one per text, with the guard's policies as categories."""
    results = [{"flagged": False, "categories": {}, "category_scores": {}, "category_applied_input_types": {}} for _ in range(count)]
    for verdict in verdicts:
        result = results[verdict.text_index]
        result["categories"][verdict.policy] = verdict.unsafe
        result["category_scores"][verdict.policy] = verdict.score
        result["category_applied_input_types"][verdict.policy] = ["text"]
        result["flagged"] = result["flagged"] or verdict.unsafe
    return results


def _served_name(config: ServeConfig) -> str:
    if config.served_model_name:
        return config.served_model_name
    local = Path(config.model)
    return local.resolve().name if local.is_dir() else config.model


def create_app(config: ServeConfig, guard: Guard | None = None):
    """The FastAPI app serving `guard` (loaded from `config.model` when not given)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    config.validate()
    if guard is None:
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
            os.environ[THREADS_ENV] = str(config.threads)
        guard = Guard.from_pretrained(config.model, revision=config.revision, backend=config.backend)
    if guard.kind == "judge":
        raise ServeError(f"{config.model} is a JudgeGuard; guardkit serve serves encoder guards (TaskGuard, MultiTaskGuard, UniGuard)")
    name = _served_name(config)
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    metrics = Metrics()
    batcher = MicroBatcher(guard, config.max_batch_size, config.max_wait_ms, config.forward_batch_size, metrics)

    async def lifespan(app):
        yield
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)

    app = FastAPI(title="guardkit", summary="guardkit guard server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.guard, app.state.batcher, app.state.metrics = guard, batcher, metrics
    endpoints = {"/v1/moderations", "/v1/check", "/v1/models", "/health", "/metrics"}

    def error_response(error: RequestError) -> JSONResponse:
        content = {"error": {"message": error.message, "type": error.error_type, "param": error.param, "code": error.status}}
        return JSONResponse(content, status_code=error.status)

    @app.middleware("http")
    async def guard_requests(request: Request, call_next):
        started = time.perf_counter()
        endpoint = request.url.path if request.url.path in endpoints else "other"
        request.state.error_type = None
        try:
            if api_key is not None and endpoint != "/health":
                scheme, _, sent = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), api_key.encode()):
                    message = "missing or wrong API key: send the header 'Authorization: Bearer KEY'"
                    raise RequestError(401, message, None, "authentication_error")
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
                message = f"request body of {length} bytes; this server takes at most {config.max_body_bytes} (max_body_bytes)"
                raise RequestError(413, message)
            response = await call_next(request)
        except RequestError as error:
            request.state.error_type = error.error_type
            response = error_response(error)
        metrics.record_request(endpoint, response.status_code, time.perf_counter() - started, request.state.error_type)
        return response

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        request.state.error_type = error.error_type
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        request.state.error_type = kind
        return error_response(RequestError(error.status_code, f"{request.method} {request.url.path}: {error.detail}", None, kind))

    async def read_body(request: Request) -> dict:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise RequestError(413, f"request body above {config.max_body_bytes} bytes (max_body_bytes)")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(400, f"the request body is not valid JSON ({error})") from None
        if not isinstance(body, dict):
            raise RequestError(400, f"the request body must be a JSON object, got {type(body).__name__}")
        return body

    async def check(texts: list[str], policies: list[str | Policy] | None) -> list[Verdict]:
        try:
            return await asyncio.wrap_future(batcher.submit(texts, policies))
        except GuardkitError as error:  # a policy this guard cannot score, or an instruction too long for it
            raise RequestError(400, str(error), None if policies is None else "policies") from None
        except Exception:
            logger.exception("scoring failed")
            message = "the guard failed to score this request; the server log has the details"
            raise RequestError(500, message, None, "server_error") from None

    @app.post("/v1/moderations")
    async def moderations(request: Request):
        body = await read_body(request)
        texts = _texts(body, config)
        verdicts = await check(texts, None)
        return {"id": f"modr-{uuid.uuid4().hex}", "model": name, "results": moderation_results(verdicts, len(texts))}

    @app.post("/v1/check")
    async def check_texts(request: Request):
        body = await read_body(request)
        texts = _texts(body, config)
        verdicts = await check(texts, _policies(body))
        return {"id": f"chk-{uuid.uuid4().hex}", "model": name, "results": [dataclasses.asdict(verdict) for verdict in verdicts]}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "guardkit"}]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "kind": guard.kind, "backend": guard.backend, "policies": guard.policy_ids}

    @app.get("/metrics")
    async def prometheus_metrics():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def app_from_environment():
    """The app factory uvicorn calls in every worker process; the options come in $GUARDKIT_SERVE_CONFIG."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ServeError(f"{CONFIG_ENV} is not set; start the server with `guardkit serve`")
    return create_app(ServeConfig(**json.loads(raw)))


def serve(config: ServeConfig) -> None:
    """`guardkit serve`: check the options and the guard folder, then run uvicorn with `config.workers` workers."""
    import uvicorn

    config.validate()
    folder = _local_folder(config.model, config.revision)
    manifest = read_manifest(folder)
    choose_backend(folder, config.backend, "cpu")  # a missing export or onnxruntime is reported here, not by every worker
    if manifest.kind == "judge":
        raise ServeError(f"{config.model} is a JudgeGuard; guardkit serve serves encoder guards (TaskGuard, MultiTaskGuard, UniGuard)")
    # Workers load the folder already downloaded here, under the name the user gave it.
    resolved = dataclasses.replace(config, model=str(folder), revision=None, served_model_name=_served_name(config))
    os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(resolved))
    uvicorn.run(
        "guardkit.serve:app_from_environment",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level=config.log_level,
    )
