"""`guardkit evaluate` options."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardkit.assets import DEFAULT_ENCODER, DEFAULT_LLM
from guardkit.config import ConfigError
from guardkit.data.evaluation_sets import DEFAULT_POLICY_BENCH_DIR, DEFAULT_POLICY_FOLLOWING_DIR, POLICY_BENCH_SCOPES


def split_names(values: list[str]) -> list[str]:
    """`["a,b", "c"]` -> `["a", "b", "c"]`: options accept repeats, commas, or both."""
    names = [part.strip() for value in values for part in value.split(",")]
    return list(dict.fromkeys(name for name in names if name))


@dataclass
class EvaluateConfig:
    output: str = field(metadata={"help": "folder for results.json, report.md and the plots (created if missing)"})
    suite: list[str] = field(
        metadata={
            "action": "extend",
            "help": "suites to run, separated by commas or repeated: synthetic, public, over-refusal, robustness, "
            "efficiency, policy-bench, offline-corpora, policy-following",
        }
    )
    model: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "guard folder (from `guardkit train` / `guardkit merge`, a JudgeGuard folder included) or Hub "
            "model id; a folder of guard folders (e.g. TaskGuards, one per policy) is scored as one set that flags "
            "a text when any of its guards does; repeat --model for several",
        },
    )
    baseline: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "baselines scored by the same harness, separated by commas or repeated: llm-judge, api-judge, "
            "keyword, embedding-knn",
        },
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "guardkit dataset (folder or Hub id) whose test split the synthetic and robustness suites use; "
            "default: the first dataset named in a --model's guardkit.json"
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset"})
    policies: str | None = field(
        default=None,
        metadata={
            "help": "policies to evaluate: ids separated by commas or policy YAML files; default: the models' own "
            "policies, or every shipped policy when only baselines run"
        },
    )
    update_card: str | None = field(
        default=None,
        metadata={"help": "a guard folder evaluated here (one of --model) whose README.md model-index receives the results"},
    )
    max_examples: int = field(
        default=500,
        metadata={
            "help": "at most this many texts per suite, dataset and policy (a fixed, label-stratified sample); "
            "keeps LLM-judge baselines affordable"
        },
    )
    corpus_examples: int | None = field(
        default=None,
        metadata={
            "help": "offline-corpora: texts sampled per corpus (default: --max_examples); a guard checking every policy "
            "scores each of them under all of them"
        },
    )
    long_benign_examples: int | None = field(
        default=None,
        metadata={
            "help": "offline-corpora: long benign documents (2-100 KB, stratified by size) to score (default: --corpus_examples); "
            "a pair guard reads each window of each under every rule"
        },
    )
    bootstrap_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95%% confidence intervals; 0 skips them"})
    confidence_level: float = field(default=0.95, metadata={"help": "coverage of the bootstrap confidence intervals"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, perturbations and bootstrap"})
    batch_size: int = field(default=32, metadata={"help": "texts per forward pass for guards and the llm-judge baseline"})
    device: str | None = field(default=None, metadata={"help": "torch device (cpu, cuda, ...); default: cuda when available"})
    judge_model: str = field(
        default=DEFAULT_LLM,
        metadata={"help": "causal LM of the llm-judge baseline: smollm2-135m (shipped), a local folder or a Hub id"},
    )
    judge_few_shot: int | None = field(
        default=None,
        metadata={"help": "policy examples per label in the llm-judge prompt; default: guardkit.llm_judge's default"},
    )
    api_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint of the api-judge baseline, e.g. http://127.0.0.1:8000/v1"},
    )
    api_model: str | None = field(default=None, metadata={"help": "model name the api-judge sends to --api-base-url"})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "environment variable holding the api-judge key (a local server needs none)"},
    )
    api_concurrency: int = field(default=4, metadata={"help": "api-judge requests in flight at once"})
    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "sentence encoder of the embedding-knn baseline (shipped name, folder or Hub id)"},
    )
    knn_k: int = field(default=3, metadata={"help": "neighbours per label that the embedding-knn baseline averages"})
    benchmarks: list[str] = field(
        default_factory=list,
        metadata={"action": "extend", "help": "public benchmarks for the public suite (default: the whole registry)"},
    )
    benchmark_files: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "NAME=PATH: read benchmark NAME from local copies of its own files instead of the Hub (repeatable)",
        },
    )
    policy_bench_dir: str = field(
        default=DEFAULT_POLICY_BENCH_DIR,
        metadata={"help": "folder of the hand-written policy-bench files, <policy>.jsonl"},
    )
    policy_bench_half: str = field(
        default="test",
        metadata={
            "help": "half of policy-bench (by a hash of each row's text) that the policy-bench, over-refusal and "
            "policy-following suites read: test (the rows no default was tuned on), dev (the rows guardkit's defaults "
            "were chosen on) or all",
            "choices": list(POLICY_BENCH_SCOPES),
        },
    )
    policy_following_dir: str = field(
        default=DEFAULT_POLICY_FOLLOWING_DIR,
        metadata={
            "help": "folder of the policy-following suite's unseen policies: policies/<id>.yaml and their "
            "hand-labelled rows, <id>.jsonl"
        },
    )
    perturbations: list[str] = field(
        default_factory=list,
        metadata={"action": "extend", "help": "perturbations for the robustness suite (default: all of them)"},
    )
    decontaminate_with: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "extra guardkit dataset folders whose texts are removed from the offline corpora, besides the "
            "datasets the models name",
        },
    )
    efficiency_texts: int = field(default=64, metadata={"help": "texts the efficiency suite times for every model and baseline"})
    latency_repeats: int = field(default=20, metadata={"help": "single-text calls behind the p50/p95 latency"})
    efficiency_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads (OMP_NUM_THREADS) of the efficiency processes; default: torch's own choice, one per "
            "core. On a machine shared with other jobs, 1 avoids threads waiting on each other"
        },
    )

    def __post_init__(self) -> None:
        self.suite = split_names(self.suite)
        self.baseline = split_names(self.baseline)
        self.benchmarks = split_names(self.benchmarks)
        self.perturbations = split_names(self.perturbations)
        if not self.suite:
            raise ConfigError("--suite: name at least one suite")
        if not self.model and not self.baseline:
            raise ConfigError("nothing to evaluate: give at least one --model or --baseline")
        for name, value in (
            ("max_examples", self.max_examples),
            ("batch_size", self.batch_size),
            ("efficiency_texts", self.efficiency_texts),
            ("latency_repeats", self.latency_repeats),
            ("api_concurrency", self.api_concurrency),
            ("knn_k", self.knn_k),
            ("efficiency_threads", self.efficiency_threads or 1),
            ("corpus_examples", 1 if self.corpus_examples is None else self.corpus_examples),
            ("long_benign_examples", 1 if self.long_benign_examples is None else self.long_benign_examples),
        ):
            if value < 1:
                raise ConfigError(f"--{name} must be at least 1, got {value}")
        if self.policy_bench_half not in POLICY_BENCH_SCOPES:
            raise ConfigError(f"--policy_bench_half must be one of {', '.join(POLICY_BENCH_SCOPES)}, got {self.policy_bench_half!r}")
        if self.bootstrap_resamples < 0:
            raise ConfigError(f"--bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}")
        if not 0 < self.confidence_level < 1:
            raise ConfigError(f"--confidence_level must lie between 0 and 1, got {self.confidence_level}")

    def benchmark_file_map(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for item in self.benchmark_files:
            name, separator, path = item.partition("=")
            if not separator or not name or not path:
                raise ConfigError(f"--benchmark_files {item!r}: expected NAME=PATH")
            files[name.strip()] = path.strip()
        return files
