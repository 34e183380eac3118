"""`merge.yaml`: the recipe of a UniGuard (method, sources, weights per layer group, hyperparameters, heads).

Written next to every merged guard; `guardkit merge --recipe merge.yaml --output DIR` rebuilds the
same weights bit for bit without a search. Floats are stored by YAML with their full repr, so they
read back exactly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guardkit.calibration import CALIBRATIONS
from guardkit.errors import GuardkitError
from guardkit.merge.merging import GRANULARITIES
from guardkit.merge.methods import METHODS, get_method
from guardkit.yamlfile import first_validation_problem, read_yaml


class RecipeError(GuardkitError):
    """A merge.yaml that cannot be replayed; the message names the field."""


class RecipeSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="guard folder or Hub id")
    weights: dict[str, float] = Field(description="layer group -> weight of this source")


class RecipeDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    revision: str | None = None


class HeadSettings(BaseModel):
    """How the per-policy heads are fitted on the merged encoder: which training rows, how regularised."""

    model_config = ConfigDict(extra="forbid")

    rows_per_label: int = Field(
        default=150, ge=0, description="training rows per policy and label (a seeded sample; 0: every row), besides the policy's examples"
    )
    c: float = Field(default=1.0, gt=0, description="inverse L2 strength of each head's logistic regression")
    # The defaults are what recipes written before these fields existed were fitted with, so they replay unchanged.
    example_weight: float = Field(default=1.0, gt=0, description="weight of each policy example against 1 for a training row")
    safe_windows: bool = Field(default=False, description="also fit on every later window of each safe row, as long texts are scored")
    cross_policy_weight: float = Field(
        default=0.0, ge=0, description="weight of the cross-policy rows (config multitask rows the default config lacks); 0 leaves them out"
    )
    seed: int = 0


class SearchRecord(BaseModel):
    """How the weights were found (for the record; replay does not read it)."""

    model_config = ConfigDict(extra="forbid")

    objective: str
    value: float
    best_trial: int | None = Field(default=None, description="None when no search ran (the sources share one encoder)")
    trials: int
    sampler: str
    fpr_penalty: float
    validation_rows: int
    source_values: dict[str, float] = Field(description="objective of each source alone, scored as a UniGuard")
    fell_back_to: str | None = Field(default=None, description="the source kept as it is because no merge beat it on validation")


class MergeRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merge_method: str
    base_model: str = Field(description="the pre-trained encoder the sources were fine-tuned from (task vectors are measured against it)")
    granularity: str
    block_group_size: int = 1
    parameters: dict[str, float] = Field(default_factory=dict, description="the method's searched hyperparameters")
    options: dict[str, bool | str] = Field(default_factory=dict, description="the method's fixed options")
    seed: int = Field(default=0, description="seeds the random drops of stochastic methods (dare)")
    # Recipes written before the field calibrated on validation: they replay as they were.
    calibration: str = Field(default="validation", description="how each policy's threshold is chosen: validation, none (0.5) or everyday")
    target_fpr: float | None = Field(
        default=None,
        description="with calibration validation: None maximises validation F1, a rate picks the best recall at it; "
        "with everyday: the share of everyday validation texts a policy may flag (None: the default share)",
    )
    sources: list[RecipeSource]
    dataset: RecipeDataset
    heads: HeadSettings = Field(default_factory=HeadSettings)
    pair_source: str | None = Field(default=None, description="the source copied into pair/ for policies the UniGuard never saw")
    search: SearchRecord | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "MergeRecipe":
        if self.merge_method not in METHODS:
            raise ValueError(f"unknown merge method '{self.merge_method}'; choose one of {', '.join(sorted(METHODS))}")
        method = get_method(self.merge_method)
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got '{self.calibration}'")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
        if len(self.sources) < 2:
            raise ValueError("a merge needs at least two sources")
        expected = {hyperparameter.name for hyperparameter in method.hyperparameters}
        if set(self.parameters) != expected:
            raise ValueError(f"method {method.name} takes parameters {sorted(expected)}, got {sorted(self.parameters)}")
        options = {option.name: option for option in method.options}
        for name, value in self.options.items():
            if name not in options or value not in options[name].choices:
                raise ValueError(f"option {name}={value!r} is not one of method {method.name}'s options")
        groups = set(self.sources[0].weights)
        for source in self.sources[1:]:
            if set(source.weights) != groups:
                raise ValueError(
                    f"source {source.model} has weights for layer groups {sorted(source.weights)}, the first source for {sorted(groups)}"
                )
        return self

    def weights_by_group(self) -> dict[str, list[float]]:
        """layer group -> one weight per source, in source order."""
        return {group: [source.weights[group] for source in self.sources] for group in self.sources[0].weights}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def load(cls, path: str | Path) -> "MergeRecipe":
        path = Path(path)
        raw = read_yaml(path, RecipeError, str(path), "recipe file")
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise RecipeError(first_validation_problem(str(path), error)) from None
