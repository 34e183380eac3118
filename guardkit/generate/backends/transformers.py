"""`transformers` backend: a local causal LM (shipped name, Hub id or folder), batched sampling."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from guardkit.assets import DEFAULT_LLM, resolve_model
from guardkit.generate.backends.base import BackendError, GeneratorBackend, register_backend
from guardkit.generate.prompting import Prompt, Response
from guardkit.stable_random import stable_seed


DTYPES = ("auto", "float32", "bfloat16")


def resolve_dtype(dtype: str, device) -> str:
    """"float32" or "bfloat16" for `dtype` on `device`: auto takes bfloat16 where the hardware computes it natively."""
    import torch

    if dtype != "auto":
        return dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    # oneDNN runs bfloat16 natively on AVX512-BF16 and AMX cores (SmolLM2-135M sampling at batch 32 here:
    # 1.45x the tokens per second of float32); elsewhere it emulates it, slower than float32.
    return "bfloat16" if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"


@register_backend("transformers")
class TransformersBackend(GeneratorBackend):
    def __init__(
        self, model: str, *, temperature: float, top_p: float, seed: int, batch_size: int = 8, device: str | None = None, dtype: str = "auto", **options
    ):
        super().__init__(model, temperature=temperature, top_p=top_p, seed=seed)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(dtype, self.device)
        path = resolve_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        except OSError as error:
            raise BackendError(f"cannot load generator '{model}' ({error}); give a shipped name, a Hub id or a local folder") from None
        # Left padding keeps every prompt's last token at the end, where generation continues.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def default_prompt_style(self) -> str:
        # The shipped 135M model follows a numbered list far better than instructions (see RECIPES.md).
        if self.model_name == DEFAULT_LLM or not self.tokenizer.chat_template:
            return "list"
        return "chat"

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "batch_size": self.batch_size, "dtype": self.dtype}

    def _input_text(self, prompt: Prompt) -> str:
        if prompt.is_chat:
            if not self.tokenizer.chat_template:
                raise BackendError(f"generator '{self.model_name}' has no chat template; use --prompt-style list")
            return self.tokenizer.apply_chat_template(list(prompt.messages), add_generation_prompt=True, tokenize=False)
        return prompt.text

    def run(self, prompts: Sequence[Prompt], on_response: Callable[[Response], None]) -> None:
        import torch

        texts = {prompt.id: self._input_text(prompt) for prompt in prompts}
        lengths = {prompt.id: len(self.tokenizer(texts[prompt.id]).input_ids) for prompt in prompts}
        # Similar prompt lengths share a batch: less left padding to compute over.
        ordered = sorted(prompts, key=lambda prompt: lengths[prompt.id])
        eos_ids = self._eos_ids()
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            inputs = self.tokenizer([texts[prompt.id] for prompt in batch], return_tensors="pt", padding=True).to(self.device)
            # Seeded by the batch's first request: a resumed run samples what the uninterrupted one would have.
            torch.manual_seed(stable_seed(self.seed, batch[0].id) % 2**63)
            stops = sorted({stop for prompt in batch for stop in prompt.stop})
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs,
                    do_sample=True,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    max_new_tokens=max(prompt.max_new_tokens for prompt in batch),
                    pad_token_id=self.tokenizer.pad_token_id,
                    **({"stop_strings": stops, "tokenizer": self.tokenizer} if stops else {}),
                )
            generated = output[:, inputs["input_ids"].shape[1] :]
            for prompt, tokens in zip(batch, generated, strict=True):
                tokens = tokens[: prompt.max_new_tokens].tolist()
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                stopped = [text.find(stop) for stop in prompt.stop if stop in text]
                if stopped:
                    text = text[: min(stopped)]
                finished = bool(stopped) or any(token in eos_ids for token in tokens)
                on_response(Response(prompt_id=prompt.id, text=text, truncated=not finished))

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def close(self) -> None:
        del self.model
