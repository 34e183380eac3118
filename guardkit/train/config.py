"""Configs of `guardkit train task|multitask|judge`: one dataclass each, every field a CLI flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardkit.assets import DEFAULT_ENCODER, DEFAULT_LLM

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


CALIBRATION_HELP = (
    "validation: each policy's threshold maximises F1 (or meets --target_fpr) on the validation split; "
    "none: 0.5, the class-balanced head's own boundary (better where validation is easier than real text); "
    "everyday: 0.5, raised per policy until at most --target_fpr (default 0.01) of the validation split's real everyday "
    "texts (benign corpus rows) is flagged; policies the guard never saw keep 0.5"
)


@dataclass
class TrainingConfig:
    """What every guard trainer shares."""

    dataset: str = field(metadata={"help": "dataset folder written by `guardkit generate`, or its Hub dataset id"})
    output: str = field(metadata={"help": "folder to write the guard to; rerunning with the same options resumes from its checkpoints"})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset (branch, tag or commit)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training split (fractions allowed)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimiser steps (-1: run all --epochs)"})
    batch_size: int = field(default=16, metadata={"help": "examples per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps whose gradients add up before one update"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (linear warmup, then linear decay)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of the steps spent warming the learning rate up"})
    eval_steps: int | None = field(
        default=None, metadata={"help": "validate every this many steps (default: once per epoch)"}
    )
    target_fpr: float | None = field(
        default=None,
        metadata={
            "help": "calibrate the threshold to the best recall at this false-positive rate on validation (default: maximise F1); "
            "with --calibration everyday: the share of everyday validation texts a policy may flag (default 0.01)"
        },
    )
    precision: str = field(
        default="auto",
        metadata={"help": f"numeric precision, one of {', '.join(PRECISIONS)}; auto: bf16 or fp16 on a GPU that supports it, fp32 otherwise"},
    )
    seed: int = field(default=42, metadata={"help": "random seed for initialisation, shuffling and dropout"})
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repo id the guard will be published as (shown in the model card's usage code)"}
    )
    license: str = field(default="apache-2.0", metadata={"help": "license of the trained guard; must be compatible with the base model's"})


@dataclass
class EncoderTrainingConfig(TrainingConfig):
    """Encoder guards (TaskGuard, MultiTaskGuard): a sequence classifier with a calibrated threshold."""

    base_model: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "encoder to fine-tune: the shipped 'minilm-l6', or any id/folder AutoModelForSequenceClassification loads (deberta-v3, ModernBERT, roberta, ...)"},
    )
    class_weighting: bool = field(
        default=True, metadata={"help": "weight the loss by inverse class frequency so the rarer label counts as much as the other"}
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": "what the head reads: mean (the token mean, as sentence-transformers encoders such as all-MiniLM-L6-v2 "
            "were trained to be read; a frozen pooling layer inside a standard classifier) or cls; auto: mean where the "
            "base folder says it was trained for mean pooling"
        },
    )
    head_init: str = field(
        default="prototype",
        metadata={
            "help": "prototype: start from a logistic-regression head fitted on the frozen encoder's features (with "
            "--epochs 0 that head is the guard); random: the usual random head"
        },
    )
    head_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the prototype head's (or the policy reader's) logistic regression"})
    early_stopping_patience: int = field(
        default=2, metadata={"help": "stop after this many validations without a better validation F1 (0: never stop early)"}
    )
    policy_examples: bool = field(
        default=True,
        metadata={
            "help": "also train on the examples written in each trained policy (safe, unsafe, hard negatives; source "
            "'policy-example'); they never enter validation or test"
        },
    )
    policy_example_weight: float = field(
        default=20.0,
        metadata={
            "help": "weight of each policy example in the prototype head's logistic regression, against 1 for a dataset "
            "row: the hand-written examples say where the policy's line runs, the many corpus rows fill the space around it"
        },
    )
    calibration: str = field(default="validation", metadata={"help": CALIBRATION_HELP})
    # The TaskGuards of one run share most rows and, with --epochs 0, one frozen encoder (guardkit.feature_cache).
    feature_cache: str | None = field(
        default=None,
        metadata={
            "help": "folder to keep the frozen encoder's features of every text the head is fitted on, reused by later runs "
            "on the same encoder and length (make reproduce shares one across its TaskGuards); default: none"
        },
    )
    # Measured on the corpora's unused training side (docs/benchmarks.md, "Real text as a development set"): a head
    # fitted on first windows alone had never seen the middle of a long text, which the guard scores window by window.
    safe_windows: bool = field(
        default=True,
        metadata={
            "help": "a TaskGuard's prototype head and the policy reader: also fit on every later --max_length window of each safe row, "
            "as a long text is scored window by window (an unsafe text's later windows may be safe, so only safe rows are cut; "
            "pair inputs other than the reader read first windows only)"
        },
    )


@dataclass
class EncoderTuningConfig:
    """`guardkit train encoder`: the contrastive stage (SetFit-style) before the guards' heads."""

    dataset: str = field(metadata={"help": "dataset folder written by `guardkit generate`, or its Hub dataset id"})
    output: str = field(metadata={"help": "folder to write the tuned encoder to (sentence-transformers layout); pass it as --base_model of `train task|multitask`"})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset (branch, tag or commit)"})
    base_model: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "sentence encoder to tune: the shipped 'minilm-l6', or any id/folder AutoModel loads (its 1_Pooling says mean or cls)"},
    )
    # Measured on policy-bench (docs/benchmarks.md, "A contrastive stage before the heads").
    pairs_per_policy: int = field(
        default=400,
        metadata={"help": "text pairs drawn per policy (same label: cosine 1, different labels: cosine 0); the time grows with it"},
    )
    example_share: float = field(
        default=0.5, metadata={"help": "chance that a pair member is one of the policy's own examples or hard negatives rather than a dataset row"}
    )
    cross_share: float = field(
        default=0.3,
        metadata={
            "help": "chance that a pair member is one of the policy's cross-policy rows (config 'multitask': texts of other policies "
            "labelled under this one): pairs of a policy's unsafe texts with other policies' unsafe texts teach the encoder to keep them apart"
        },
    )
    base_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of a term that keeps embeddings near the base encoder's (1 - cosine to the base embedding of each pair "
            "member and of as many other dataset rows per step); 0 turns it off. Without it the stage fitted the hand-written "
            "examples' register and real text got worse (docs/benchmarks.md)"
        },
    )
    batch_size: int = field(default=32, metadata={"help": "pairs per optimiser step"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (linear warmup, then linear decay)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of the steps spent warming the learning rate up"})
    max_length: int = field(default=64, metadata={"help": "tokens per text in a pair (the guards later read 128-token windows)"})
    seed: int = field(default=42, metadata={"help": "seed of the pair draw and of torch"})
    license: str = field(default="apache-2.0", metadata={"help": "license of the tuned encoder; must be compatible with the base model's"})


# kw_only: a required field may then follow the inherited ones that have defaults.
@dataclass(kw_only=True)
class TaskGuardConfig(EncoderTrainingConfig):
    policy: str = field(metadata={"help": "id of the one policy this TaskGuard guards (rows of config 'default' with that policy)"})
    # Measured on policy-bench's dev half (11 shipped policies, data of the default `guardkit generate`): the
    # prototype head alone with the examples weighted 20 and threshold 0.5 reached mean F1 0.874 (embedding-kNN
    # 0.813); one epoch of fine-tuning with validation thresholds 0.765 (docs/benchmarks.md).
    epochs: float = field(default=0.0, metadata={"help": "passes over the training split (fractions allowed); 0: the prototype head is the guard"})
    # At 0.5 the TaskGuards of the dbc9c0b run together flagged 17.5% of real benign requests (offline-corpora); raised
    # until each flags at most 1% of its everyday validation texts, 9.8%, policy-bench F1 0.827 -> 0.825 and
    # over-refusal 0.233 -> 0.187 (docs/benchmarks.md, "Everyday thresholds at 1%").
    calibration: str = field(default="everyday", metadata={"help": CALIBRATION_HELP})
    max_length: int = field(
        default=128, metadata={"help": "tokens per training example; longer texts are scored with a sliding window at inference"}
    )
    # Measured on policy-bench (docs/benchmarks.md, "Cross-policy rows in a TaskGuard's head"): weight 5 took the
    # dev half's cross-policy FPR 0.203 -> 0.137 for mean F1 0.837 -> 0.834.
    cross_policy_weight: float = field(
        default=5.0,
        metadata={
            "help": "weight, in the prototype head's logistic regression, of the dataset's cross-policy rows (config 'multitask': "
            "texts written for other policies, labelled under this one, mostly out of its scope and so safe) against 1 for a "
            "row of its own; 0 leaves them out"
        },
    )


@dataclass
class MultiTaskGuardConfig(EncoderTrainingConfig):
    holdout_policies: str | None = field(
        default=None,
        metadata={"help": "policy ids, comma-separated, left out of training and validation; the test split reports their zero-shot scores"},
    )
    # Measured with the data of `make reproduce` (docs/benchmarks.md, "Policy reader"): against the rule-pair model
    # the reader lowered the cross-policy FPR from 0.82 to 0.42 and the off-scope FPR on unseen policies from 0.76 to
    # 0.18, and it trains and scores in minutes where the pairs took most of the 60-minute chain.
    epochs: float = field(default=0.0, metadata={"help": "passes over the training pairs (rule and instruction input; the reader takes 0)"})
    pair_input: str = field(
        default="reader",
        metadata={
            "help": "reader: a policy reader compares the text's sentence embedding with the policy's examples, rules and "
            "allowed items (any policy, read from its YAML; no fine-tuning); rule: the guard reads (policy name + one "
            "disallowed rule, text) pairs and a text is as unsafe as the rule it breaks most; instruction: (whole policy "
            "instruction, text) pairs. rule and instruction need --epochs above 0"
        },
    )
    everyday_texts: int = field(
        default=512, metadata={"help": "reader input: benign corpus texts of the training split kept with the guard as its reference of ordinary traffic"}
    )
    everyday_share: float = field(
        default=0.25,
        metadata={"help": "reader input: total weight of the dataset's everyday background rows (config default) as a share of the multitask rows'"},
    )
    # Measured on the data of `make reproduce` (docs/benchmarks.md, "Composed policies for the reader"): the ranking
    # stays where it was (AUPRC within 0.012); share 0.25 was best on policy-bench's dev half (AUPRC 0.907 -> 0.914).
    composed_policies: int = field(
        default=1000,
        metadata={
            "help": "reader input: distinct policies composed from the trained ones' rules (unions, and carve-outs that move "
            "disallowed rules to the allowed items), each row labelled from the rules it records; 0: the trained policies only"
        },
    )
    composed_share: float = field(
        default=0.25, metadata={"help": "reader input: total weight of the composed policies' rows as a share of the other training rows'"}
    )
    # Validation thresholds (max F1 on synthetic rows) made the reader flag more real text: offline-corpora benign
    # FPR 0.86 against 0.61 at 0.5, harmful-vs-benign AUPRC 0.75 against 0.80 (docs/benchmarks.md, "Policy reader").
    # At 0.5 it flagged 43% of real benign requests; everyday thresholds (docs/benchmarks.md, "The MultiTaskGuard's
    # everyday thresholds") took that to 25% and policy-bench F1 0.798 -> 0.811.
    calibration: str = field(default="everyday", metadata={"help": CALIBRATION_HELP})
    max_length: int = field(
        default=160,
        metadata={"help": "tokens per (instruction, text) pair; a rule instruction takes 10-30 tokens, the text gets the rest"},
    )
    negatives_per_rule_pair: float = field(
        default=2.0, metadata={"help": "rule input: (rule, text) pairs a text does not break, per pair it breaks"}
    )
    rule_paraphrases: bool = field(
        default=True,
        metadata={"help": "rule input: also train on reworded rules and policy names, so the guard reads the rule, not a fixed string"},
    )


@dataclass
class JudgeGuardConfig(TrainingConfig):
    base_model: str = field(
        default=DEFAULT_LLM, metadata={"help": "causal LM to fine-tune: the shipped 'smollm2-135m' or any id/folder AutoModelForCausalLM loads"}
    )
    epochs: float = field(default=1.0, metadata={"help": "passes over the training split (fractions allowed)"})
    batch_size: int = field(default=4, metadata={"help": "examples per device per step"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (2e-4 is a good start with --lora_r)"})
    max_length: int = field(default=512, metadata={"help": "tokens per prompt + verdict; longer prompts are cut from the end of the text"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (peft); 0 fine-tunes every weight"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (used with --lora_r)"})
    cpu_time_budget_minutes: float = field(
        default=20.0,
        metadata={"help": "on CPU, train on as many examples as fit in this many minutes (0: no limit); ignored on a GPU"},
    )
