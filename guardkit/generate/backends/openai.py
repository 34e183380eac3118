"""`openai` backend: any OpenAI-compatible endpoint (OpenAI, vLLM, TGI, Ollama, llama.cpp, `transformers serve`).

Requests run concurrently on asyncio, under a requests-per-minute limit, each with its own timeout; timeouts,
connection errors, 429 and 5xx are retried with exponential backoff. When a request still fails, the run stops
with a BackendError: every response delivered before that is already on disk, so rerunning resumes.
Chat prompts go to /v1/chat/completions and raw text prompts (list continuation) to /v1/completions.
The API key is read from an environment variable and handed to the client only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

from guardkit.assets import SHIPPED_MODELS, resolve_model
from guardkit.errors import server_refusal
from guardkit.generate.backends.base import BackendError, GeneratorBackend, register_backend
from guardkit.generate.prompting import Prompt, Response

logger = logging.getLogger(__name__)
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart (no limit when rpm is 0)."""

    def __init__(self, requests_per_minute: float):
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            delay = self._next_start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_start = max(self._next_start, time.monotonic()) + self.interval


@register_backend("openai")
class OpenAIBackend(GeneratorBackend):
    def __init__(
        self,
        model: str,
        *,
        temperature: float,
        top_p: float,
        seed: int,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        requests_per_minute: float = 0.0,
        request_timeout: float = 120.0,
        max_retries: int = 5,
        retry_backoff: float = 1.0,
        **options,
    ):
        # A shipped name stands for the folder that `transformers serve FOLDER` names its model by.
        super().__init__(resolve_model(model) if model in SHIPPED_MODELS else model, temperature=temperature, top_p=top_p, seed=seed)
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.requests_per_minute = requests_per_minute
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        key = os.environ.get(api_key_env)
        if not key:
            if base_url and urlparse(base_url).hostname in LOCAL_HOSTS:
                key = "not-needed-for-a-local-server"
            else:
                raise BackendError(
                    f"the openai backend needs an API key in the environment variable {api_key_env} "
                    "(or --api-key-env NAME); it is read from there only and never written anywhere"
                )
        self._api_key = key

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "concurrency": self.concurrency, "requests_per_minute": self.requests_per_minute}

    def _scrub(self, message: str) -> str:
        return message.replace(self._api_key, "***") if self._api_key else message

    def run(self, prompts: Sequence[Prompt], on_response: Callable[[Response], None]) -> None:
        if prompts:
            asyncio.run(self._run_all(list(prompts), on_response))

    async def _run_all(self, prompts: list[Prompt], on_response: Callable[[Response], None]) -> None:
        import openai

        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=self.request_timeout)
        limiter = RateLimiter(self.requests_per_minute)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(prompt: Prompt) -> None:
            async with slots:
                response = await self._with_retries(client, limiter, prompt)
            on_response(response)

        # gather, not TaskGroup/except*: those need Python 3.11 and the package supports 3.10.
        tasks = [asyncio.ensure_future(one(prompt)) for prompt in prompts]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await client.close()

    async def _with_retries(self, client, limiter: RateLimiter, prompt: Prompt) -> Response:
        import openai

        for attempt in range(self.max_retries + 1):
            await limiter.wait()
            try:
                return await self._call(client, prompt)
            except (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as error:
                problem = error
            except openai.APIStatusError as error:
                if error.status_code not in RETRYABLE_STATUS:
                    raise BackendError(
                        f"the endpoint refused a request with HTTP {error.status_code}: {self._scrub(server_refusal(error))[:300]}; "
                        "check --generator (for `transformers serve` it is the served folder path), --base-url and the API key"
                    ) from None
                problem = error
            if attempt < self.max_retries:
                delay = self.retry_backoff * 2**attempt * (0.5 + random.random())
                logger.warning("request %s failed (%s); retry %d/%d in %.1fs", prompt.id, type(problem).__name__, attempt + 1, self.max_retries, delay)
                await asyncio.sleep(delay)
        raise BackendError(
            f"the endpoint {self.base_url or 'api.openai.com'} kept failing ({type(problem).__name__}: "
            f"{self._scrub(str(problem))[:200]}) after {self.max_retries} retries; finished requests are saved, "
            "rerun the same command once the endpoint is back to resume"
        )

    async def _call(self, client, prompt: Prompt) -> Response:
        common = dict(model=self.model_name, max_tokens=prompt.max_new_tokens, temperature=self.temperature, top_p=self.top_p)
        if prompt.stop:
            common["stop"] = list(prompt.stop)
        if prompt.is_chat:
            result = await client.chat.completions.create(messages=list(prompt.messages), **common)
            choice = result.choices[0]
            text = choice.message.content or ""
        else:
            result = await client.completions.create(prompt=prompt.text, **common)
            choice = result.choices[0]
            text = choice.text or ""
        # Servers differ on whether the stop string is echoed; cut it off either way.
        for stop in prompt.stop:
            text = text.split(stop, 1)[0]
        return Response(prompt_id=prompt.id, text=text, truncated=choice.finish_reason == "length")
