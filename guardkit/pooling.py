"""Mean pooling inside a standard sequence-classification model, so the head reads the sentence embedding.

all-MiniLM-L6-v2 (and most sentence-transformers encoders) were trained to be read by mean pooling over the
tokens, while `BertForSequenceClassification` classifies from the [CLS] position. Instead of custom model
code (which a bare `pipeline("text-classification")` could not load), one more encoder layer is appended
whose weights make the [CLS] output the layer-normalised mean of the previous layer's token states:

- attention: query and key weights zero, so every position attends uniformly to every unmasked token;
  value weights the identity, so the attention output is the mean of the token states;
- attention output: the identity times MEAN_SCALE, so LayerNorm(MEAN_SCALE * mean + residual) is
  LayerNorm(mean) up to residual / MEAN_SCALE (LayerNorm is scale-invariant);
- feed-forward: all zero, so the second LayerNorm leaves the normalised mean as it is.

The layer is frozen during training. The pooler after it is set to PROJECTION_SCALE times the identity, so
tanh keeps it (nearly) linear and a head fitted on the frozen features is exactly what the model computes.
The folder stays a plain BERT/RoBERTa classifier with one more layer; ModernBERT has mean pooling natively
(`classifier_pooling: mean`).
"""

from __future__ import annotations

import json
from pathlib import Path

MEAN_SCALE = 1.0e4
PROJECTION_SCALE = 0.05
# Model types whose encoder layers are BERT's (attention self query/key/value, output dense + LayerNorm,
# intermediate dense, output dense + LayerNorm).
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert")
POOLING_CHOICES = ("auto", "mean", "cls")


def base_pooling(path: str | Path) -> str:
    """The pooling a sentence-transformers folder says it was trained with ("mean" or "cls"); "cls" for a plain model."""
    config = Path(path) / "1_Pooling" / "config.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        if values.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def supports_mean_pooling(model_type: str) -> bool:
    return model_type in BERT_LIKE or model_type == "modernbert"


def resolve_pooling(choice: str, base_path: str | Path, model_type: str) -> str:
    """"auto": mean where the base was trained for it and the architecture allows it, else cls."""
    if choice not in POOLING_CHOICES:
        raise ValueError(f"pooling must be one of {', '.join(POOLING_CHOICES)}, got {choice!r}")
    if choice == "auto":
        return "mean" if base_pooling(base_path) == "mean" and supports_mean_pooling(model_type) else "cls"
    return choice


def add_mean_pooling(model) -> None:
    """Append the frozen mean-pooling layer to a BERT-like classifier (or switch ModernBERT to mean pooling)."""
    import copy

    import torch

    config = model.config
    if config.model_type == "modernbert":
        config.classifier_pooling = "mean"
        return
    if config.model_type not in BERT_LIKE:
        raise ValueError(f"mean pooling is not available for model type '{config.model_type}'")
    encoder = model.base_model.encoder
    layer = copy.deepcopy(encoder.layer[-1])
    size = config.hidden_size
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.zero_()
        layer.attention.self.value.weight.copy_(torch.eye(size))
        layer.attention.output.dense.weight.copy_(torch.eye(size) * MEAN_SCALE)
        layer.attention.output.LayerNorm.weight.fill_(1.0)
        layer.output.LayerNorm.weight.fill_(1.0)
    for parameter in layer.parameters():
        parameter.requires_grad_(False)
    encoder.layer.append(layer)
    config.num_hidden_layers += 1
    pooler = getattr(model.base_model, "pooler", None) or getattr(getattr(model, "classifier", None), "dense", None)
    if pooler is not None:
        dense = pooler.dense if hasattr(pooler, "dense") else pooler
        with torch.no_grad():
            dense.weight.copy_(torch.eye(size) * PROJECTION_SCALE)
            dense.bias.zero_()


def has_mean_pooling(model) -> bool:
    """Whether a model reads the token mean: ModernBERT's setting, or a BERT-like model ending in the pooling layer."""
    import torch

    config = model.config
    if config.model_type == "modernbert":
        return getattr(config, "classifier_pooling", "cls") == "mean"
    if config.model_type not in BERT_LIKE:
        return False
    layer = model.base_model.encoder.layer[-1]
    return bool(torch.count_nonzero(layer.attention.self.query.weight) == 0 and torch.count_nonzero(layer.intermediate.dense.weight) == 0)
