"""Classification heads fitted on a frozen encoder: what the head reads, and logistic regressions on it.

Shared by training (a TaskGuard's prototype head, fitted before fine-tuning or instead of it) and merging
(a UniGuard's per-policy heads, refitted on every merged encoder). The features are exactly what the
model's final linear layer reads (pooler output for BERT), so a fitted head is what the model computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def final_linear(model):
    """The linear layer that makes the logits (BERT: classifier; RoBERTa and others: classifier.out_proj)."""
    import torch

    head = model.classifier
    return head if isinstance(head, torch.nn.Linear) else head.out_proj


def head_features(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int, progress: bool = False, pairs: Sequence[str] | None = None) -> np.ndarray:
    """What the final linear layer reads for each text (or (pair, text)), the model in eval mode, texts cut at max_length."""
    import torch
    from tqdm.auto import tqdm

    captured: list[np.ndarray] = []
    hook = final_linear(model).register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach().float().cpu().numpy()))
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    features = None
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="head features", unit="batch", disable=not progress):
                members = order[start : start + batch_size]
                batch_texts = [texts[index] for index in members]
                if pairs is None:
                    inputs = tokenizer(batch_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                else:
                    inputs = tokenizer([pairs[index] for index in members], batch_texts, padding=True, truncation="only_second", max_length=max_length, return_tensors="pt")
                model(**{name: values.to(device) for name, values in inputs.items()})
                batch_features = captured.pop()
                if features is None:
                    features = np.zeros((len(texts), batch_features.shape[1]), dtype=np.float32)
                features[members] = batch_features
    finally:
        hook.remove()
    return features if features is not None else np.zeros((0, 0), dtype=np.float32)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, c: float, balanced: bool, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """(weights, bias, training accuracy) of an L2 logistic regression of unsafe (1) against safe (0)."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=5000)
    regression.fit(features, labels, sample_weight=sample_weight)
    return regression.coef_[0].astype(np.float32), float(regression.intercept_[0]), float(regression.score(features, labels))


def set_binary_head(model, weights: np.ndarray, bias: float) -> None:
    """Make a (safe, unsafe) head compute logits (-f/2, f/2) with f = weights.x + bias: softmax gives sigmoid(f)."""
    import torch

    final = final_linear(model)
    half = torch.as_tensor(weights, dtype=final.weight.dtype) / 2
    with torch.no_grad():
        final.weight.copy_(torch.stack([-half, half]).to(final.weight.device))
        final.bias.copy_(torch.tensor([-bias / 2, bias / 2], dtype=final.bias.dtype, device=final.bias.device))


def set_multilabel_head(model, weights: np.ndarray, biases: np.ndarray) -> None:
    """Make a multi-label head compute one logit per label, weights[k].x + biases[k] (sigmoid = P(unsafe) under label k)."""
    import torch

    final = final_linear(model)
    with torch.no_grad():
        final.weight.copy_(torch.as_tensor(weights, dtype=final.weight.dtype).to(final.weight.device))
        final.bias.copy_(torch.as_tensor(biases, dtype=final.bias.dtype).to(final.bias.device))
