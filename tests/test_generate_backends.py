import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from guardkit.generate.backends import BACKENDS, BackendError, get_backend
from guardkit.generate.backends.transformers import resolve_dtype
from guardkit.generate.prompting import Prompt, judge_chat_prompt
from guardkit.generate.reflection import ChatJudge
from guardkit.policies import load_policies

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"
OPTIONS = dict(temperature=0.9, top_p=0.95, seed=0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real `transformers serve` process on 127.0.0.1 that a test can kill and start again on the same port."""

    def __init__(self, folder: Path, log: Path):
        self.folder = folder
        self.port = _free_port()
        self.log = log
        self.process = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        cli = Path(sys.executable).parent / "transformers"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                # Continuous batching serves several requests in flight (the concurrency tests need it).
                [str(cli), "serve", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port), "--continuous-batching"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("transformers serve did not become ready in 120 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def tiny_server(tiny_causal_lm_dir, tmp_path_factory):
    server = Server(tiny_causal_lm_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    server.start()
    yield server
    server.kill()


def _openai(server, **options):
    return get_backend("openai")(str(server.folder), base_url=server.base_url, **{**OPTIONS, **options})


def test_registry_has_both_backends():
    assert {"transformers", "openai"} <= set(BACKENDS)
    with pytest.raises(BackendError, match="choose one of"):
        get_backend("nope")


def test_transformers_backend_batches_text_and_chat_prompts(tiny_causal_lm_dir):
    backend = get_backend("transformers")(str(tiny_causal_lm_dir), batch_size=2, **OPTIONS)
    assert backend.default_prompt_style() == "chat"  # a non-default model with a chat template
    prompts = [Prompt(id=f"t{index}", max_new_tokens=5 + index, text="Here are examples:\n1. one\n2." + " more" * index) for index in range(3)]
    prompts.append(Prompt(id="c0", max_new_tokens=4, messages=({"role": "user", "content": "hello"},)))
    responses = []
    backend.run(prompts, responses.append)
    assert sorted(response.prompt_id for response in responses) == ["c0", "t0", "t1", "t2"]
    by_id = {response.prompt_id: response for response in responses}
    lengths = {prompt.id: len(backend.tokenizer(by_id[prompt.id].text, add_special_tokens=False).input_ids) for prompt in prompts}
    assert all(lengths[prompt.id] <= prompt.max_new_tokens + 2 for prompt in prompts)
    assert all(isinstance(response.truncated, bool) for response in responses)
    # Sampling is seeded per batch: the same batch samples the same texts in a resumed run.
    again = []
    backend.run(prompts[:2], again.append)
    assert {response.prompt_id: response.text for response in again} == {"t0": by_id["t0"].text, "t1": by_id["t1"].text}


def test_transformers_backend_dtype(tiny_causal_lm_dir):
    import torch

    for dtype in ("float32", "bfloat16"):
        backend = get_backend("transformers")(str(tiny_causal_lm_dir), batch_size=2, device="cpu", dtype=dtype, **OPTIONS)
        assert next(backend.model.parameters()).dtype == getattr(torch, dtype) and backend.describe()["dtype"] == dtype
        responses = []
        backend.run([Prompt(id="t0", max_new_tokens=3, text="Here are examples:\n1. one\n2.")], responses.append)
        assert [response.prompt_id for response in responses] == ["t0"]
    # auto: bfloat16 only where oneDNN computes it natively, float32 elsewhere
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_dtype("auto", torch.device("cpu")) == ("bfloat16" if native else "float32")
    assert resolve_dtype("float32", torch.device("cpu")) == "float32"


def test_openai_backend_needs_a_key_for_remote_endpoints(monkeypatch):
    monkeypatch.delenv("GUARDKIT_TEST_KEY", raising=False)
    with pytest.raises(BackendError, match="GUARDKIT_TEST_KEY"):
        get_backend("openai")("gpt-4o-mini", base_url="https://api.example.com/v1", api_key_env="GUARDKIT_TEST_KEY", **OPTIONS)


def test_openai_backend_chat_and_completions_concurrently(tiny_server):
    prompts = [Prompt(id=f"chat{index}", max_new_tokens=6, messages=({"role": "user", "content": f"say {index}"},)) for index in range(8)]
    prompts += [Prompt(id=f"text{index}", max_new_tokens=6, text=f"1. one\n2. two\n{index}.") for index in range(4)]
    for concurrency in (1, 8):
        responses = []
        started = time.monotonic()
        _openai(tiny_server, concurrency=concurrency).run(prompts, responses.append)
        assert sorted(response.prompt_id for response in responses) == sorted(prompt.id for prompt in prompts), concurrency
        assert all(isinstance(response.text, str) for response in responses)
        assert time.monotonic() - started < 120


def test_openai_backend_rate_limit_spaces_requests(tiny_server):
    prompts = [Prompt(id=str(index), max_new_tokens=2, text="hello") for index in range(3)]
    started = time.monotonic()
    _openai(tiny_server, concurrency=3, requests_per_minute=120).run(prompts, lambda response: None)
    assert time.monotonic() - started >= 1.0  # 3 starts at 0.5 s spacing


def test_chat_judge_counts_unparseable_answers_without_crashing(tiny_server):
    (policy,) = load_policies([str(FIXTURE)])
    judge = ChatJudge(_openai(tiny_server, temperature=0.0, top_p=1.0), parse_retries=1)
    results = judge.raw_scores(policy, ["Can I feed my dog grapes?", "How often should I walk my dog?"])
    assert len(results) == 2
    # A random tiny model rarely answers with a verdict; whatever it answers, each result is None or a 0/1 score.
    assert all(result is None or result[0] in (0.0, 1.0) for result in results)
    assert judge.unparseable >= 2 * sum(result is None for result in results)
    assert policy.disallowed[0] in judge_chat_prompt("x", policy, "a text").messages[1]["content"]


def test_openai_backend_fault_then_resume(tiny_server):
    """The server is killed after the first response; the run stops with a BackendError, then resumes."""
    server = tiny_server
    prompts = [Prompt(id=str(index), max_new_tokens=16, text=f"Count: {index}") for index in range(10)]
    delivered = []

    def kill_after_first(response):
        delivered.append(response.prompt_id)
        if len(delivered) == 1:
            threading.Thread(target=server.kill).start()

    backend = _openai(server, concurrency=2, max_retries=2, retry_backoff=0.1, request_timeout=10)
    try:
        with pytest.raises(BackendError, match="rerun the same command") as error:
            backend.run(prompts, kill_after_first)
        assert "not-needed" not in str(error.value)
        assert 1 <= len(delivered) < len(prompts)
        server.start()
        remaining = [prompt for prompt in prompts if prompt.id not in delivered]
        resumed = []
        backend.run(remaining, lambda response: resumed.append(response.prompt_id))
        assert sorted(delivered + resumed, key=int) == [prompt.id for prompt in prompts]
        assert not set(delivered) & set(resumed)
    finally:
        if server.process.poll() is not None:
            server.start()  # leave the module's server as the other tests expect it
