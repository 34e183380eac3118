"""`guardkit serve` on tiny untrained guards: endpoints, the openai client, limits, micro-batching, workers, the key.

Servers listen on 127.0.0.1 only, on a port the OS picks, and are always stopped (bounded waits).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest
import torch
import uvicorn
from huggingface_hub import ModelCard
from tiny_models import short_policy, tiny_bert

from guardkit import cli
from guardkit.guard import Guard, save_guard
from guardkit.serve import MicroBatcher, ServeConfig, ServeError, create_app

CARD = ModelCard("---\nlicense: apache-2.0\n---\n\n# test guard\n")
TEXTS = ["How long do I boil an egg?", "Tell me the secret recipe.", "a third text about the weather", "ok"]
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair_guard_dir(tmp_path_factory, tiny_bert_dir):
    model, tokenizer = tiny_bert(tiny_bert_dir, seed=1)
    folder = tmp_path_factory.mktemp("serve-pair-guard")
    save_guard(
        folder, model, tokenizer, kind="multitask", policies=[short_policy("recipes"), short_policy("secrets")],
        threshold=0.5, thresholds={"recipes": 0.4, "secrets": 0.6}, max_length=128,
        base_model="sentence-transformers/all-MiniLM-L6-v2", card=CARD,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def guard(pair_guard_dir):
    return Guard.from_pretrained(pair_guard_dir)


@contextmanager
def running(app):
    """Serve `app` from a thread on a free loopback port; yields the base URL and always stops the server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


LIMITS = dict(max_texts=4, max_chars=200, max_request_chars=300, max_body_bytes=4096)


@pytest.fixture(scope="module")
def server(pair_guard_dir, guard):
    config = ServeConfig(model=str(pair_guard_dir), max_batch_size=16, max_wait_ms=50, **LIMITS)
    with running(create_app(config, guard)) as url:
        yield url


def counter(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_openai_client_moderations_against_the_server(server, guard, pair_guard_dir):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=30)
    response = client.moderations.create(model="anything", input=TEXTS)
    assert response.model == pair_guard_dir.name and response.id.startswith("modr-")
    assert len(response.results) == len(TEXTS)
    expected = guard.check(TEXTS)
    for index, result in enumerate(response.results):
        mine = [verdict for verdict in expected if verdict.text_index == index]
        assert result.category_scores.model_dump(exclude_none=True) == pytest.approx({v.policy: v.score for v in mine}, abs=1e-5)
        assert result.categories.model_dump(exclude_none=True) == {v.policy: v.unsafe for v in mine}
        assert result.flagged == any(v.unsafe for v in mine)
        assert result.categories.recipes is not None  # policy ids read as attributes too
    single = client.moderations.create(input=TEXTS[1])
    assert len(single.results) == 1


def test_check_endpoint_with_ids_and_a_custom_policy(server, guard):
    custom = short_policy("house_rules", "Flags talk about competitors.")
    body = {"input": TEXTS[:2], "policies": ["secrets", custom.model_dump()]}
    answer = httpx.post(f"{server}/v1/check", json=body, timeout=30).json()
    expected = guard.check(TEXTS[:2], ["secrets", custom])
    assert [(r["text_index"], r["policy"], r["label"], r["threshold"]) for r in answer["results"]] == [
        (v.text_index, v.policy, v.label, v.threshold) for v in expected
    ]
    assert [r["score"] for r in answer["results"]] == pytest.approx([v.score for v in expected], abs=1e-5)
    thresholds = {r["policy"]: r["threshold"] for r in answer["results"]}
    assert thresholds == {"secrets": 0.6, "house_rules": 0.5}  # its own calibrated one; the default for the new one
    everything = httpx.post(f"{server}/v1/check", json={"input": "hello"}, timeout=30).json()
    assert {r["policy"] for r in everything["results"]} == {"recipes", "secrets"}


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    return error


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"input": ["a"] * 5}, 413, "at most 4 per request"),
        ({"input": "x" * 201}, 413, r"input\[0\] has 201 characters; .* at most 200 per text \(max_chars\)"),
        ({"input": ["y" * 200, "z" * 150]}, 413, r"350 characters in all; .* at most 300 per request"),
        ({"input": 42}, 400, "must be a string or a list of strings, got int"),
        ({"input": ["fine", 3]}, 400, r"input\[1\] must be a string, got int"),
        ({"input": [{"type": "image_url"}]}, 400, "only text input"),
        ({"input": []}, 400, "empty list"),
        ({"input": "   "}, 400, "empty or only whitespace"),
        ({"text": "hello"}, 400, "missing 'input'"),
        ({"input": "hi", "policies": ["elections_misinformation_x"]}, 400, "unknown policy 'elections_misinformation_x'"),
        ({"input": "hi", "policies": [{"id": "bad"}]}, 400, r"policies\[0\]"),
        ({"input": "hi", "policies": [7]}, 400, r"policies\[0\] must be a policy id or a policy object, got int"),
        ({"input": "hi", "policies": []}, 400, "non-empty list"),
    ],
)
def test_bad_requests_get_clear_json_errors(server, body, status, message):
    error = error_of(httpx.post(f"{server}/v1/check", json=body, timeout=30), status)
    assert re.search(message, error["message"]), error["message"]


def test_body_size_bad_json_and_unknown_routes(server):
    error = error_of(httpx.post(f"{server}/v1/moderations", content=b'{"input": "' + b"a" * 5000 + b'"}', timeout=30), 413)
    assert "at most 4096 (max_body_bytes)" in error["message"]

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(10):
            yield b" " * 1000

    error_of(httpx.post(f"{server}/v1/moderations", content=chunks(), timeout=30), 413)
    assert "not valid JSON" in error_of(httpx.post(f"{server}/v1/moderations", content=b"{nope", timeout=30), 400)["message"]
    assert "JSON object" in error_of(httpx.post(f"{server}/v1/moderations", json=["a"], timeout=30), 400)["message"]
    assert error_of(httpx.get(f"{server}/v1/nothing", timeout=30), 404)["type"] == "not_found_error"
    error_of(httpx.get(f"{server}/v1/moderations", timeout=30), 405)
    metrics = httpx.get(f"{server}/metrics", timeout=30).text
    assert re.search(r'guardkit_request_errors_total\{endpoint="/v1/moderations",type="invalid_request_error"\} [1-9]', metrics)


def test_health_models_and_metrics(server, pair_guard_dir):
    health = httpx.get(f"{server}/health", timeout=30).json()
    assert health["status"] == "ok" and health["backend"] == "torch" and health["policies"] == ["recipes", "secrets"]
    models = httpx.get(f"{server}/v1/models", timeout=30).json()
    assert [model["id"] for model in models["data"]] == [pair_guard_dir.name]
    httpx.post(f"{server}/v1/moderations", json={"input": TEXTS}, timeout=30).raise_for_status()
    text = httpx.get(f"{server}/metrics", timeout=30).text
    assert "# TYPE guardkit_request_duration_seconds histogram" in text and "# TYPE guardkit_batch_size histogram" in text
    assert re.search(r'guardkit_requests_total\{endpoint="/v1/moderations",status="200"\} [1-9]', text)
    assert re.search(r'guardkit_request_duration_seconds_bucket\{endpoint="/v1/moderations",le="\+Inf"\} [1-9]', text)
    assert counter(text, "guardkit_batch_size_count") == counter(text, "guardkit_model_calls_total") >= 1


def test_concurrent_requests_are_micro_batched_with_unbatched_results(server, guard):
    before = httpx.get(f"{server}/metrics", timeout=30).text
    requests = [[f"request {index} asks about the weather", TEXTS[index % 4]] for index in range(12)]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda texts: httpx.post(f"{server}/v1/moderations", json={"input": texts}, timeout=60).json(), requests))
    after = httpx.get(f"{server}/metrics", timeout=30).text
    calls = counter(after, "guardkit_model_calls_total") - counter(before, "guardkit_model_calls_total")
    assert 1 <= calls < len(requests)
    assert counter(after, "guardkit_texts_total") - counter(before, "guardkit_texts_total") == 24
    for texts, answer in zip(requests, answers):
        alone = guard.check(texts)
        for index, result in enumerate(answer["results"]):
            mine = {v.policy: v for v in alone if v.text_index == index}
            assert result["category_scores"] == pytest.approx({policy: v.score for policy, v in mine.items()}, abs=1e-5)
            assert result["categories"] == {policy: v.unsafe for policy, v in mine.items()}


class CountingGuard:
    """A real guard whose `check` calls are recorded (texts per call)."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.calls: list[int] = []

    def check(self, texts, policies=None, batch_size=32):
        self.calls.append(len(texts))
        return self.guard.check(texts, policies, batch_size=batch_size)


def test_micro_batcher_fills_batches_groups_by_policies_and_reports_failures(guard):
    counting = CountingGuard(guard)
    batcher = MicroBatcher(counting, max_batch_size=8, max_wait_ms=200)
    try:
        jobs = [(TEXTS[:3], None) for _ in range(4)] + [(TEXTS[:2], ["secrets"]), (TEXTS[2:], ["secrets"])]
        futures = [batcher.submit(texts, policies) for texts, policies in jobs]
        results = [future.result(timeout=60) for future in futures]
        assert max(counting.calls) <= 8 and len(counting.calls) < len(jobs) and sum(counting.calls) == 16
        for (texts, policies), verdicts in zip(jobs, results):
            expected = guard.check(texts, policies)
            assert [(v.text_index, v.policy, v.label) for v in verdicts] == [(v.text_index, v.policy, v.label) for v in expected]
            assert [v.score for v in verdicts] == pytest.approx([v.score for v in expected], abs=1e-5)
        failing = [batcher.submit(["hi"], ["not_a_policy_anywhere"]) for _ in range(2)]
        good = batcher.submit(["hi"], ["recipes"])
        for future in failing:
            with pytest.raises(Exception, match="unknown policy 'not_a_policy_anywhere'"):
                future.result(timeout=60)
        assert good.result(timeout=60)[0].policy == "recipes"
    finally:
        batcher.close()
    assert not batcher._thread.is_alive()
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit(["late"])


def test_batching_off_scores_each_request_alone(guard):
    counting = CountingGuard(guard)
    batcher = MicroBatcher(counting, max_batch_size=1, max_wait_ms=0)
    try:
        futures = [batcher.submit([text]) for text in TEXTS]
        [future.result(timeout=60) for future in futures]
        assert counting.calls == [1, 1, 1, 1]
    finally:
        batcher.close()


def test_api_key_required_when_configured(pair_guard_dir, guard, monkeypatch):
    monkeypatch.setenv("GUARDKIT_TEST_KEY", KEY)
    with running(create_app(ServeConfig(model=str(pair_guard_dir), api_key_env="GUARDKIT_TEST_KEY"), guard)) as url:
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # load balancer probes need no key
        error = error_of(httpx.post(f"{url}/v1/moderations", json={"input": "hi"}, timeout=30), 401)
        assert error["type"] == "authentication_error" and KEY not in json.dumps(error)
        error_of(httpx.post(f"{url}/v1/moderations", json={"input": "hi"}, headers={"Authorization": "Bearer wrong"}, timeout=30), 401)
        error_of(httpx.get(f"{url}/metrics", timeout=30), 401)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).moderations.create(input="hi")
        ok = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0).moderations.create(input="hi")
        assert len(ok.results) == 1
    monkeypatch.delenv("GUARDKIT_TEST_KEY")
    with pytest.raises(ServeError, match="GUARDKIT_TEST_KEY: that environment variable is not set"):
        create_app(ServeConfig(model=str(pair_guard_dir), api_key_env="GUARDKIT_TEST_KEY"), guard)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_with_two_workers_never_logs_the_key(pair_guard_dir, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "GUARDKIT_TEST_KEY": KEY, "GUARDKIT_ORT_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "guardkit.cli", "serve", "--model", str(pair_guard_dir), "--port", str(port), "--workers", "2",
        "--threads", "1", "--api-key-env", "GUARDKIT_TEST_KEY", "--log-level", "debug",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not answer /health in time:\n" + log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=2, timeout=60)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda text: client.moderations.create(input=[text]), TEXTS * 4))
        assert all(len(answer.results) == 1 for answer in answers)
        wrong = {"Authorization": f"Bearer {KEY}x"}
        assert httpx.post(f"{url}/v1/moderations", json={"input": "hi"}, headers=wrong, timeout=30).status_code == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    text = log.read_text()
    assert "Started parent process" in text and text.count("Application startup complete") == 2
    assert '"POST /v1/moderations HTTP/1.1" 200' in text and '"POST /v1/moderations HTTP/1.1" 401' in text
    assert KEY not in text and KEY[:12] not in text


def test_serve_help_and_bad_options(pair_guard_dir, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "refused with 413 naming the limit, never cut" in help_text and "--max-batch-size" in help_text
    assert cli.main(["serve", "--model", str(pair_guard_dir), "--max_texts", "0"]) == 2
    assert "--max_texts must be at least 1" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    assert cli.main(["serve", "--model", str(pair_guard_dir), "--api-key-env", "NO_SUCH_KEY_VARIABLE"]) == 2
    assert "not set or empty" in capsys.readouterr().err
    assert cli.main(["serve", "--model", str(pair_guard_dir), "--backend", "onnx"]) == 2
    assert "export the guard first" in capsys.readouterr().err
