"""report.md: one table per suite, models and baselines side by side, the best value of each row in bold."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from guardkit.evaluate.harness import Measurement
from guardkit.evaluate.results import LOWER_IS_BETTER, measurement_from_dict
from guardkit.evaluate.suites import policy_following

REPORT_FILE = "report.md"
TEMPLATE_DIR = Path(__file__).parent / "templates"
MISSING = "–"
# Rows of rates and probabilities; every other metric is a quantity (time, size, speed).
QUANTITY_SUFFIXES = ("_ms", "_s", "_mb", "_per_s")
# Suites whose measurements read better as several titled tables than as one: suite -> splitter.
SPLIT_TABLES = {policy_following.NAME: policy_following.report_tables}


@dataclass
class TableRow:
    dataset: str
    policy: str
    metric: str
    n: str
    cells: list[str]


@dataclass
class Table:
    title: str  # empty for a suite's only table
    rows: list[TableRow]


@dataclass
class Section:
    name: str
    summary: str
    status: str
    notes: list[str]
    columns: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def format_value(metric: str, value: float) -> str:
    if not metric.endswith(QUANTITY_SUFFIXES):
        return f"{value:.3f}"
    # Three significant digits at most: timings on a shared CPU carry no more.
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def best_values(metric: str, values: list[float | None]) -> set[int]:
    """Indices holding the best value of a row; none when fewer than two scorers have one."""
    present = [(index, value) for index, value in enumerate(values) if value is not None and not math.isnan(value)]
    if len(present) < 2:
        return set()
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick(value for _, value in present)
    return {index for index, value in present if math.isclose(value, best, rel_tol=1e-9, abs_tol=1e-12)}


def table_rows(measurements: list[Measurement], columns: list[str]) -> list[TableRow]:
    """Rows keyed by (dataset, policy, metric) in first-seen order, a cell per scorer."""
    cells: dict[tuple[str, str, str], dict[str, Measurement]] = defaultdict(dict)
    for measurement in measurements:
        cells[(measurement.dataset, measurement.policy, measurement.metric)][measurement.model] = measurement
    rows = []
    for (dataset, policy, metric), by_model in cells.items():
        values = [by_model[model].value if model in by_model else None for model in columns]
        best = best_values(metric, values)
        rendered = []
        for index, model in enumerate(columns):
            measurement = by_model.get(model)
            if measurement is None or measurement.value is None:
                rendered.append(MISSING)
                continue
            text = format_value(metric, measurement.value)
            if index in best:
                text = f"**{text}**"
            if measurement.ci is not None:
                text += f" [{format_value(metric, measurement.ci[0])}, {format_value(metric, measurement.ci[1])}]"
            rendered.append(text)
        counts = sorted({measurement.n for measurement in by_model.values()})
        rows.append(TableRow(dataset, policy, metric, "/".join(map(str, counts)), rendered))
    return rows


def throughput_ratios(measurements: list[Measurement], scorers: list[dict[str, Any]]) -> list[str]:
    """"guard is N x faster than baseline" lines from the efficiency throughput rows."""
    throughput = {row.model: row.value for row in measurements if row.metric == "throughput_texts_per_s" and row.value}
    models = [scorer["name"] for scorer in scorers if scorer["type"] != "baseline" and scorer["name"] in throughput]
    baselines = [scorer["name"] for scorer in scorers if scorer["type"] == "baseline" and scorer["name"] in throughput]
    return [
        f"throughput of {model} / {baseline}: {throughput[model] / throughput[baseline]:.3g}×"
        for model in models
        for baseline in baselines
    ]


def render_report(results: dict[str, Any], summaries: dict[str, str], images: dict[str, list[str]]) -> str:
    measurements = [measurement_from_dict(row) for row in results["results"]]
    columns = [scorer["name"] for scorer in results["scorers"]]
    sections = []
    for suite, info in results["suites"].items():
        rows = [measurement for measurement in measurements if measurement.suite == suite]
        used = [column for column in columns if any(row.model == column for row in rows)]
        split = SPLIT_TABLES[suite](rows) if suite in SPLIT_TABLES else [("", rows)]
        tables = [Table(title, table_rows(members, used)) for title, members in split if members]
        section = Section(suite, summaries.get(suite, ""), info["status"], info["notes"], used, tables)
        if suite == "efficiency":
            section.ratios = throughput_ratios(rows, results["scorers"])
        section.images = images.get(suite, [])
        sections.append(section)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), keep_trailing_newline=True, trim_blocks=False, autoescape=False
    )
    return environment.get_template("report.md.jinja").render(
        created=results["created"],
        guardkit_version=results["guardkit_version"],
        confidence=f"{results['config']['confidence_level']:.0%}",
        scorers=[{**scorer, "policies": ", ".join(scorer["policies"]) or "any"} for scorer in results["scorers"]],
        policies=results["policies"],
        sections=sections,
    )


def write_report(results: dict[str, Any], summaries: dict[str, str], images: dict[str, list[str]], folder: Path) -> Path:
    path = folder / REPORT_FILE
    path.write_text(render_report(results, summaries, images), encoding="utf-8")
    return path
