"""The `guardkit merge` config: search merge coefficients for a UniGuard, or replay a merge recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardkit.calibration import CALIBRATIONS
from guardkit.merge.methods import METHODS

SAMPLERS = ("tpe", "cmaes")
OBJECTIVES = ("mean_f1", "min_f1")


@dataclass
class MergeConfig:
    output: str = field(metadata={"help": "folder for the UniGuard (a guard folder, plus merge.yaml, search.csv, search.png)"})
    models: list[str] = field(
        default_factory=list,
        metadata={"help": "source guards to merge (TaskGuards and a MultiTaskGuard): folders or Hub ids, same encoder and tokenizer"},
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "guardkit dataset folder or Hub id; its 'multitask' validation split is the search objective "
            "(with --recipe: overrides the recipe's dataset)"
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset"})
    recipe: str | None = field(
        default=None,
        metadata={"help": "merge.yaml of an earlier merge: rebuild that UniGuard without a search (needs only --output)"},
    )
    method: str = field(
        default="ties",
        metadata={
            "help": "merge method: linear (weighted average), task_arithmetic, ties or dare (task vectors over --base_model); "
            "the classification head has no pre-trained counterpart and is always the weighted average of the sources' heads",
            "choices": sorted(METHODS),
        },
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "the pre-trained encoder the sources were fine-tuned from (task vectors are measured against it); "
            "default: base_model of the sources' guardkit.json"
        },
    )
    granularity: str = field(
        default="global",
        metadata={
            "help": "global: one weight per source; block: one weight per source and layer group "
            "(embeddings, each group of transformer blocks, head)",
            "choices": ["global", "block"],
        },
    )
    block_group_size: int = field(default=1, metadata={"help": "transformer blocks per layer group with --granularity block"})
    weight_range: list[float] = field(
        default_factory=list,
        metadata={"help": "LOW HIGH bounds of the searched source weights; default: the method's own range"},
    )
    linear_normalize: bool = field(
        default=True, metadata={"help": "linear: divide by the sum of the weights (a model soup); off: the plain weighted sum"}
    )
    dare_combine: str = field(
        default="ties",
        metadata={
            "help": "dare: combine the sparsified task vectors by sign election (ties) or weighted sum (linear)",
            "choices": ["ties", "linear"],
        },
    )
    trials: int = field(default=40, metadata={"help": "number of merge trials in the search (a resumed study runs only the missing ones)"})
    sampler: str = field(default="tpe", metadata={"help": "Optuna sampler: tpe or cmaes", "choices": list(SAMPLERS)})
    objective: str = field(
        default="mean_f1",
        metadata={"help": "mean_f1: mean over policies of validation F1; min_f1: the worst policy's F1", "choices": list(OBJECTIVES)},
    )
    fpr_penalty: float = field(
        default=0.0, metadata={"help": "subtract this times the mean false-positive rate over policies from the objective"}
    )
    # 1,000 (the default until the data engine's 2,500 background rows) left the UniGuard's heads half of a policy's
    # safe rows: real benign FPR 0.240 against its TaskGuards' 0.170 on the same encoder (docs/benchmarks.md).
    head_rows_per_label: int = field(
        default=0,
        metadata={"help": "training rows per policy and label the UniGuard's heads are fitted on, for every merged encoder (with each policy's own examples); "
            "0 (the default) takes every row, as its TaskGuards do; a cap makes trials faster"},
    )
    head_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the heads' logistic regressions"})
    head_example_weight: float = field(
        default=20.0, metadata={"help": "weight of each policy example in the heads' logistic regressions against 1 for a row (as a TaskGuard's head)"}
    )
    head_cross_policy_weight: float = field(
        default=5.0,
        metadata={"help": "weight of the dataset's cross-policy rows (config 'multitask', texts written for other policies) in the heads' "
            "logistic regressions against 1 for a row, as a TaskGuard's head; 0 leaves them out"},
    )
    head_safe_windows: bool = field(
        default=True, metadata={"help": "also fit the heads on every later window of each safe row, as a TaskGuard's head (long texts are scored window by window)"}
    )
    # Measured on the 5b4ac7d run (docs/benchmarks.md, "The UniGuard's thresholds"): its validation thresholds
    # (0.49-0.84, max F1 on synthetic rows) cost policy-bench dev F1 0.815 -> 0.720; banking_assistant's 0.84 alone
    # took its F1 to 0.26. Everyday thresholds only raise that boundary, as a TaskGuard's do by default (its heads are
    # the TaskGuards' refitted).
    calibration: str = field(
        default="everyday",
        metadata={
            "help": "validation: each policy's threshold maximises F1 (or meets --target_fpr) on the validation split, "
            "in the search objective and in the saved guard; none: 0.5 for every policy, the class-balanced heads' own boundary; "
            "everyday: 0.5, raised per policy until at most --target_fpr (default 0.01) of the validation split's real everyday "
            "texts is flagged (where a trial's sample of --max_validation_rows holds fewer than 50 of a policy's, it scores that policy at 0.5)",
            "choices": list(CALIBRATIONS),
        },
    )
    target_fpr: float | None = field(
        default=None,
        metadata={
            "help": "with --calibration validation: each policy's threshold is the best recall at this false-positive rate on validation "
            "(default: maximise F1); with --calibration everyday: the share of everyday validation texts a policy may flag"
        },
    )
    max_validation_rows: int = field(
        default=192,
        metadata={
            "help": "score each trial on at most this many validation rows, as many per policy, a seeded sample "
            "(trial time grows with it: see benchmarks/bench_merge.py; 0: every row). The saved UniGuard is "
            "calibrated on every row"
        },
    )
    storage: str | None = field(
        default=None,
        metadata={"help": "Optuna storage URL; rerunning with the same storage resumes the study (default: sqlite:///OUTPUT/search.db)"},
    )
    study_name: str = field(default="uniguard", metadata={"help": "name of the Optuna study inside --storage"})
    seed: int = field(default=0, metadata={"help": "seed of the sampler, the validation sample and DARE's random drops"})
    batch_size: int = field(default=32, metadata={"help": "validation texts per forward pass"})
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repo id the UniGuard will be published as (shown in the model card's usage code)"}
    )
    license: str = field(default="apache-2.0", metadata={"help": "license of the UniGuard; must be compatible with its sources'"})
    compare_split: str = field(
        default="test",
        metadata={
            "help": "after merging, write comparison.csv: per-policy F1 on this split of every source (each in its own "
            "input format, at its own thresholds) and of the UniGuard; empty: skip"
        },
    )
