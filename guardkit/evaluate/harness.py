"""The shared machinery of every suite: scoring through `evaluate`'s evaluator, measurements, shared data.

Scores reach the metrics through `evaluate.evaluator("text-classification")`: a scorer bound to its
policies poses as the text-classification pipeline, and guardkit's metric scripts receive P(unsafe)
as predictions. So guards (through the Guard API, instruction pairs included) and baselines all go
through one path, with the guard's threshold and sliding window that a plain transformers pipeline
would not apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from evaluate.evaluator import TextClassificationEvaluator

from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.data.evaluation_sets import POLICY_BENCH_SCOPES, PolicyBenchRow, read_policy_bench
from guardkit.evaluate.config import EvaluateConfig
from guardkit.evaluate.metrics import METRIC_NAMES, load_metrics
from guardkit.evaluate.scorers import DECISION_THRESHOLD, Scorer
from guardkit.policies import Policy

UNSAFE = LABEL2ID["unsafe"]
# The policy column of a measurement taken under every policy at once (flagged by any of them).
ANY_POLICY = "any"
FETCH_HINT = (
    "fetch a benchmark once while online with python -c \"from guardkit.data.benchmarks import load_benchmark; "
    "load_benchmark('NAME')\", or pass --benchmark_files NAME=PATH with local copies of its files"
)


class SuiteSkipped(GuardkitError):
    """A suite that cannot run here; the message says what is missing and how to provide it."""


@dataclass(frozen=True)
class Measurement:
    """One row of results.json."""

    model: str
    suite: str
    dataset: str
    policy: str
    metric: str
    value: float | None
    ci: tuple[float, float] | None
    n: int


@dataclass
class Curve:
    """Labels and scores of one scorer on one slice, kept for the precision-recall plots."""

    model: str
    suite: str
    dataset: str
    policy: str
    references: np.ndarray
    scores: np.ndarray
    threshold: float


@dataclass
class SuiteOutcome:
    suite: str
    status: str = "ok"  # "ok", or "skipped" with the reason in notes
    notes: list[str] = field(default_factory=list)
    # What the suite read, per data source (rows, rows removed by decontamination, ...), for results.json.
    data: dict[str, dict[str, object]] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)


class ScorerPipeline:
    """A scorer bound to policies, shaped like a transformers text-classification pipeline for the evaluator.

    Scores are the scorer's decision scores (its threshold under each policy at DECISION_THRESHOLD); under
    several policies a text's score is its highest (flagged when any policy flags it). The scores of the
    last call stay in `scores` for curves and paired statistics.
    """

    task = "text-classification"

    def __init__(self, scorer: Scorer, policies: Sequence[Policy]):
        self.scorer = scorer
        self.policies = list(policies)
        self.scores = np.zeros(0)

    def __call__(self, inputs, **_pipeline_kwargs) -> list[dict[str, object]]:
        # The evaluator hands text-classification inputs as {"text": ..., "text_pair": None} rows.
        texts = [item["text"] if isinstance(item, dict) else item for item in inputs]
        self.scores = self.scorer.decision_scores(self.policies, texts)
        return [{"label": "unsafe" if score >= DECISION_THRESHOLD else "safe", "score": float(score)} for score in self.scores]


class ScoreEvaluator(TextClassificationEvaluator):
    """The text-classification evaluator handing P(unsafe), not the argmax label, to guardkit's metrics."""

    def __init__(self, metric_kwargs: dict[str, object]):
        super().__init__()
        self.METRIC_KWARGS = metric_kwargs

    def prepare_pipeline(self, model_or_pipeline, tokenizer=None, feature_extractor=None, device=None):
        # The pipeline is always a ready ScorerPipeline. evaluate 0.4.6's own version also checks for
        # transformers.TFPreTrainedModel, which transformers 5 no longer has (AttributeError).
        return model_or_pipeline

    def predictions_processor(self, predictions, label_mapping):
        return {"predictions": [prediction["score"] for prediction in predictions]}


def first_sentence(error: Exception) -> str:
    """The reason an error gives, without the how-to-fix that follows (a report says that once)."""
    return str(error).split(". ")[0].splitlines()[0]


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def stratified_sample(labels: Sequence[int], limit: int, seed: int) -> list[int]:
    """Indices of at most `limit` rows keeping the label proportions; all rows, in order, when they fit."""
    if len(labels) <= limit:
        return list(range(len(labels)))
    generator = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder shares: they add up to `limit` exactly, and every label keeps a row when it can.
    exact = limit * counts / len(labels)
    shares = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - shares), kind="stable")[: limit - shares.sum()]:
        shares[index] += 1
    if limit >= len(classes):
        for index in np.flatnonzero(shares == 0):
            shares[index] = 1
            shares[np.argmax(shares)] -= 1
    chosen: list[int] = []
    for label, share in zip(classes, shares):
        members = np.flatnonzero(labels == label)
        chosen.extend(generator.choice(members, size=share, replace=False).tolist())
    return sorted(chosen)


class EvaluationContext:
    """What suites share: the config, the scorers, the policies, the data sources and the measuring."""

    def __init__(self, config: EvaluateConfig, scorers: list[Scorer], policies: dict[str, Policy]):
        self.config = config
        self.scorers = scorers
        self.policies = policies
        self._metric_sets: dict[tuple[str, ...], object] = {}

    # --- measuring ------------------------------------------------------------------------------

    def scorable(self, scorer: Scorer, policy_ids: Sequence[str]) -> list[Policy]:
        """The run's policies among `policy_ids` that the scorer can score."""
        return [self.policies[policy_id] for policy_id in policy_ids if policy_id in self.policies and scorer.can_score(policy_id)]

    def _metrics(self, names: tuple[str, ...]):
        if names not in self._metric_sets:
            self._metric_sets[names] = load_metrics(names)
        return self._metric_sets[names]

    def measure(
        self,
        scorer: Scorer,
        policies: Sequence[Policy],
        texts: Sequence[str],
        labels: Sequence[int],
        *,
        suite: str,
        dataset: str,
        policy: str,
        metrics: tuple[str, ...] | None = None,
        curves: list[Curve] | None = None,
    ) -> tuple[list[Measurement], np.ndarray]:
        """Score `texts` under `policies` (the strictest counts) and compute metrics with bootstrap intervals.

        metrics: by default every metric when both labels occur, recall when all texts are unsafe and
        the false-positive rate when all are safe. With `curves`, the scores are kept there for plots.
        Returns the measurements and the decision scores (flagged where >= DECISION_THRESHOLD).
        """
        from datasets import Dataset

        labels = [int(label) for label in labels]
        if metrics is None:
            present = set(labels)
            metrics = METRIC_NAMES if len(present) == 2 else ("recall",) if present == {UNSAFE} else ("false_positive_rate",)
        pipeline = ScorerPipeline(scorer, policies)
        evaluator = ScoreEvaluator(
            {
                "threshold": DECISION_THRESHOLD,
                "n_resamples": self.config.bootstrap_resamples,
                "confidence_level": self.config.confidence_level,
                "seed": self.config.seed,
            }
        )
        result = evaluator.compute(
            model_or_pipeline=pipeline,
            data=Dataset.from_dict({"text": list(texts), "label": labels}),
            metric=self._metrics(tuple(metrics)),
            input_column="text",
            label_column="label",
        )
        rows = []
        for name in metrics:
            low, high = finite_or_none(result[f"{name}_ci_low"]), finite_or_none(result[f"{name}_ci_high"])
            ci = (low, high) if low is not None and high is not None else None
            rows.append(Measurement(scorer.name, suite, dataset, policy, name, finite_or_none(result[name]), ci, len(labels)))
        if curves is not None and len(set(labels)) == 2:
            curves.append(Curve(scorer.name, suite, dataset, policy, np.asarray(labels), pipeline.scores, DECISION_THRESHOLD))
        return rows, pipeline.scores

    def sample(self, labels: Sequence[int], limit: int | None = None) -> list[int]:
        """A seeded, label-stratified sample of at most `limit` rows (default --max_examples)."""
        return stratified_sample(labels, limit or self.config.max_examples, self.config.seed)

    # --- shared data ----------------------------------------------------------------------------

    @cached_property
    def dataset_source(self) -> str | None:
        """The guardkit dataset of the synthetic and robustness suites: --dataset, else the first a model names."""
        if self.config.dataset:
            return self.config.dataset
        for scorer in self.scorers:
            for dataset_id, _ in scorer.training_dataset_ids():
                return dataset_id
        return None

    @cached_property
    def test_split(self):
        """The test split of the guardkit dataset (config "default": one row per policy and text)."""
        from guardkit.data.io import load_guard_dataset

        source = self.dataset_source
        if source is None:
            raise SuiteSkipped("no guardkit dataset: pass --dataset FOLDER_OR_HUB_ID (the models name none in guardkit.json)")
        try:
            splits, _ = load_guard_dataset(source, revision=self.config.dataset_revision)
        except GuardkitError as error:
            raise SuiteSkipped(f"dataset {source}: {error}") from None
        except (OSError, ValueError) as error:
            raise SuiteSkipped(
                f"dataset {source} cannot be read here ({error}); pass --dataset with a local copy "
                "(`guardkit pull` downloads one while online)"
            ) from None
        if "test" not in splits:
            raise SuiteSkipped(f"dataset {source} has no test split")
        return splits["test"]

    @property
    def dataset_name(self) -> str:
        source = self.dataset_source or ""
        return Path(source).name if Path(source).is_dir() else source

    @cached_property
    def policy_bench(self) -> dict[str, list[PolicyBenchRow]]:
        """The hand-written policy-bench rows by policy, for the run's policies that have a file."""
        return {policy_id: rows for policy_id in self.policies if (rows := self.policy_bench_rows(policy_id))}

    @property
    def policy_bench_scope(self) -> str:
        """Which policy-bench rows the suites read, in words for their notes."""
        return POLICY_BENCH_SCOPES[self.config.policy_bench_half]

    def policy_bench_rows(self, policy_id: str) -> list[PolicyBenchRow]:
        """The policy's policy-bench rows of --policy_bench_half."""
        path = Path(self.config.policy_bench_dir) / f"{policy_id}.jsonl"
        rows = read_policy_bench(path) if path.is_file() else []
        half = self.config.policy_bench_half
        return rows if half == "all" else [row for row in rows if row.half == half]
