"""The report's figures as PNG files (matplotlib, Agg backend: no display needed).

- `pr_<suite>_<dataset>_<policy>.png`: precision-recall curve of every scorer on one slice, its
  operating point (the threshold) marked.
- `latency_vs_f1.png`: p50 latency of one text against mean F1 on the first quality suite run.
- `robustness.png`: recall drop per perturbation, pooled over policies, one bar per scorer.
- `cross_policy_<scorer>.png`: per scorer, the share of each policy-bench policy's unsafe rows (rows) that it
  flags under each evaluated policy (columns): recall on the diagonal, false-positive rate elsewhere.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from guardkit.evaluate.harness import Curve, Measurement

QUALITY_SUITES = ("synthetic", "policy-bench", "public", "offline-corpora")
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts)).strip("-")


def pr_curves(curves: list[Curve], folder: Path) -> dict[str, list[str]]:
    """One figure per (suite, dataset, policy); returns file names by suite."""
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    groups: dict[tuple[str, str, str], list[Curve]] = defaultdict(list)
    for curve in curves:
        groups[(curve.suite, curve.dataset, curve.policy)].append(curve)
    files: dict[str, list[str]] = defaultdict(list)
    for (suite, dataset, policy), members in groups.items():
        figure, axes = plt.subplots(figsize=(5, 4))
        for curve in members:
            precision, recall, _ = precision_recall_curve(curve.references, curve.scores)
            (line,) = axes.step(recall, precision, where="post", label=curve.model)
            flagged = curve.scores >= curve.threshold
            true_positives = np.sum(flagged & (curve.references == 1))
            point_precision = true_positives / max(np.sum(flagged), 1)
            point_recall = true_positives / max(np.sum(curve.references == 1), 1)
            axes.plot(point_recall, point_precision, "o", color=line.get_color())
        axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title=f"{suite}: {dataset} / {policy}")
        axes.legend(fontsize="small", loc="lower left")
        axes.grid(alpha=0.3)
        name = f"pr_{_slug(suite, dataset, policy)}.png"
        figure.tight_layout()
        figure.savefig(folder / name, dpi=DPI)
        plt.close(figure)
        files[suite].append(name)
    return dict(files)


def latency_vs_f1(measurements: list[Measurement], folder: Path) -> str | None:
    """Scatter of p50 latency against mean F1 on the first quality suite that has F1 for the scorers."""
    latency = {row.model: row.value for row in measurements if row.metric == "latency_p50_ms" and row.value is not None}
    suite = next((name for name in QUALITY_SUITES if any(row.suite == name and row.metric == "f1" for row in measurements)), None)
    if not latency or suite is None:
        return None
    f1_values: dict[str, list[float]] = defaultdict(list)
    for row in measurements:
        if row.suite == suite and row.metric == "f1" and row.value is not None:
            f1_values[row.model].append(row.value)
    models = [model for model in latency if model in f1_values]
    if not models:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 4))
    for model in models:
        x, y = latency[model], float(np.mean(f1_values[model]))
        axes.scatter([x], [y], s=40)
        axes.annotate(model, (x, y), textcoords="offset points", xytext=(5, 4), fontsize="small")
    axes.set_xscale("log")
    axes.set(xlabel="p50 latency of one text (ms, log scale)", ylabel=f"mean F1 over policies ({suite})", ylim=(0, 1.02))
    axes.set_title("quality vs. latency")
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    name = "latency_vs_f1.png"
    figure.savefig(folder / name, dpi=DPI)
    plt.close(figure)
    return name


def robustness_bars(measurements: list[Measurement], folder: Path, pooled_policy: str) -> str | None:
    rows = [row for row in measurements if row.suite == "robustness" and row.metric == "recall_drop" and row.policy == pooled_policy]
    if not rows:
        return None
    perturbations = list(dict.fromkeys(row.dataset.split("+", 1)[1] for row in rows))
    models = list(dict.fromkeys(row.model for row in rows))
    value = {(row.model, row.dataset.split("+", 1)[1]): row.value or 0.0 for row in rows}
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(perturbations)), 4))
    width = 0.8 / len(models)
    positions = np.arange(len(perturbations))
    for index, model in enumerate(models):
        heights = [value.get((model, name), 0.0) for name in perturbations]
        axes.bar(positions + index * width - 0.4 + width / 2, heights, width, label=model)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(positions, perturbations, rotation=30, ha="right")
    axes.set(ylabel="recall drop (higher = more fragile)", title="robustness: recall lost per perturbation")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    name = "robustness.png"
    figure.savefig(folder / name, dpi=DPI)
    plt.close(figure)
    return name


def cross_policy_heatmaps(measurements: list[Measurement], folder: Path, suite: str, prefix: str) -> list[str]:
    """One heatmap per scorer of the share flagged, source policies down and scored-under policies across.

    Cells are the suite's measurements on datasets `prefix + source`; the diagonal (recall) is outlined,
    cells without eligible rows stay blank.
    """
    matrices: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for row in measurements:
        if row.suite == suite and row.dataset.startswith(prefix) and row.metric in ("recall", "false_positive_rate"):
            if row.value is not None:
                matrices[row.model][(row.dataset[len(prefix) :], row.policy)] = row.value
    if not matrices:
        return []
    plt = _pyplot()
    files = []
    for model, cells in matrices.items():
        sources = sorted({source for source, _ in cells})
        columns = sorted({policy for _, policy in cells})
        grid = np.full((len(sources), len(columns)), np.nan)
        for (source, policy), value in cells.items():
            grid[sources.index(source), columns.index(policy)] = value
        figure, axes = plt.subplots(figsize=(2.5 + 0.62 * len(columns), 1.6 + 0.42 * len(sources)))
        image = axes.imshow(np.ma.masked_invalid(grid), cmap="Reds", vmin=0, vmax=1, aspect="auto")
        for row, source in enumerate(sources):
            for column, policy in enumerate(columns):
                value = grid[row, column]
                if not np.isnan(value):
                    colour = "white" if value > 0.6 else "black"
                    axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize="x-small", color=colour)
                if source == policy:
                    outline = plt.Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5)
                    axes.add_patch(outline)
        axes.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize="small")
        axes.set_yticks(range(len(sources)), sources, fontsize="small")
        axes.set(xlabel="scored under policy", ylabel="unsafe policy-bench rows of")
        axes.set_title(f"{model}: share flagged (diagonal: recall; elsewhere: false positives)", fontsize="small")
        figure.colorbar(image, ax=axes, fraction=0.04)
        figure.tight_layout()
        name = f"cross_policy_{_slug(model)}.png"
        figure.savefig(folder / name, dpi=DPI)
        plt.close(figure)
        files.append(name)
    return files
