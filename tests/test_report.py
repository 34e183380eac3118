"""REPORT.md, docs/results.md and the README headline, all computed from results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardkit.errors import GuardkitError
from guardkit.evaluate.results import SCHEMA_VERSION
from guardkit.report import headline_table, pivot, publish_to_docs, real_text_table, uniguard_versus_sources, write_report

POLICIES = ["jailbreak", "self_harm"]


def _scorer(name: str, kind: str | None, policies: list[str]) -> dict:
    scorer = {"name": name, "type": "model" if kind else "baseline", "source": name, "threshold": 0.5, "policies": policies, "notes": []}
    if kind:
        scorer["kind"] = kind
    return scorer


def _result(model: str, suite: str, policy: str, metric: str, value: float) -> dict:
    return {"model": model, "suite": suite, "dataset": "d", "policy": policy, "metric": metric, "value": value, "ci": None, "n": 10}


def _results() -> dict:
    rows = [
        _result("uniguard", "policy-bench", "jailbreak", "f1", 0.8),
        _result("uniguard", "policy-bench", "self_harm", "f1", 0.6),
        _result("jailbreak", "policy-bench", "jailbreak", "f1", 0.5),
        _result("self_harm", "policy-bench", "self_harm", "f1", 0.9),
        _result("keyword", "policy-bench", "jailbreak", "f1", 0.4),
        _result("keyword", "policy-bench", "self_harm", "f1", 0.4),
        _result("uniguard", "over-refusal", "jailbreak", "false_positive_rate", 0.2),
        _result("uniguard", "over-refusal", "self_harm", "false_positive_rate", 0.4),
        _result("keyword", "over-refusal", "jailbreak", "false_positive_rate", 0.1),
        _result("keyword", "over-refusal", "self_harm", "false_positive_rate", 0.1),
        _result("uniguard", "efficiency", "jailbreak", "throughput_texts_per_s", 140.0),
        _result("uniguard", "robustness", "jailbreak", "recall_drop", 0.0),
        _result("uniguard", "robustness", "all", "recall_drop", 0.1),
        _result("jailbreak", "robustness", "jailbreak", "recall_drop", 0.5),
        _result("jailbreak", "robustness", "all", "recall_drop", 0.5),
        _result("self_harm", "robustness", "self_harm", "recall_drop", 0.2),
        _result("self_harm", "robustness", "all", "recall_drop", 0.2),
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "created": "2026-11-28T01:02:03+00:00",
        "config": {"policy_bench_half": "test"},
        "scorers": [
            _scorer("uniguard", "uniguard", POLICIES),
            _scorer("jailbreak", "task", ["jailbreak"]),
            _scorer("self_harm", "task", ["self_harm"]),
            _scorer("keyword", None, POLICIES),
        ],
        "policies": POLICIES,
        "suites": {"policy-bench": {"status": "ok", "notes": [], "data": {}}, "public": {"status": "skipped", "notes": ["offline"], "data": {}}},
        "results": rows,
    }


def _run_folder(tmp_path: Path, results: dict | None = None) -> Path:
    out = tmp_path / "run"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "results.json").write_text(json.dumps(results or _results()))
    (out / "eval" / "search.png").write_bytes(b"png")
    (out / "timings.json").write_text(json.dumps({"generate": 600.0, "evaluate": 300.0}))
    return out


def test_every_task_guard_fills_one_column_with_its_own_policy():
    columns, rows = pivot(_results(), "policy-bench", "f1")
    assert columns == ["UniGuard", "TaskGuard", "keyword"]
    assert rows[0] == ("jailbreak", [0.8, 0.5, 0.4]) and rows[1] == ("self_harm", [0.6, 0.9, 0.4])
    assert rows[2][0] == "mean of 2 policies" and rows[2][1] == pytest.approx([0.7, 0.7, 0.4])


def test_pooled_rows_leave_the_shared_task_guard_column_empty():
    columns, rows = pivot(_results(), "robustness", "recall_drop")
    assert columns == ["UniGuard", "TaskGuard"]
    assert dict(rows)["all"] == [0.1, None] and dict(rows)["self_harm"] == [None, 0.2]


def test_headline_is_the_policy_mean_of_each_metric_with_the_best_in_bold():
    assert headline_table(_results()).splitlines() == [
        "| mean over policies | UniGuard | TaskGuard | keyword |",
        "|---|---|---|---|",
        "| F1 on hand-written policy-bench rows: test half, never tuned on | **0.700** | **0.700** | 0.400 |",
        "| over-refusal FPR on policy-bench hard negatives: test half, never tuned on (lower is better) | 0.300 | – | **0.100** |",
        "| recall drop under obfuscation (lower is better) | – | 0.350 | – |",
    ]


def test_a_run_from_before_the_halves_says_it_read_both():
    results = _results()
    del results["config"]["policy_bench_half"]
    assert "| F1 on hand-written policy-bench rows: both halves, the dev half tuned on |" in headline_table(results)


def _real_text_rows() -> list[dict]:
    def row(model, suite, dataset, policy, metric, value):
        return {**_result(model, suite, policy, metric, value), "dataset": dataset}

    return [
        row("uniguard", "offline-corpora", "harmful-vs-benign", "any", "auprc", 0.9),
        row("uniguard", "offline-corpora", "harmful-vs-benign", "jailbreak", "auprc", 0.1),
        row("keyword", "offline-corpora", "harmful-vs-benign", "any", "auprc", 0.5),
        row("uniguard", "offline-corpora", "strongreject/sexual_content-vs-benign", "sexual_content", "recall_at_1pct_fpr", 0.6),
        row("uniguard", "offline-corpora", "strongreject/hate_harassment-vs-benign", "hate_harassment", "recall_at_1pct_fpr", 0.8),
        row("jailbreak", "offline-corpora", "strongreject/sexual_content-vs-benign", "sexual_content", "recall_at_1pct_fpr", 0.5),
        row("uniguard", "offline-corpora", "benign", "any", "false_positive_rate", 0.3),
        row("uniguard", "offline-corpora", "benign/email", "any", "false_positive_rate", 0.9),
        row("keyword", "offline-corpora", "benign", "any", "false_positive_rate", 0.1),
        row("uniguard", "policy-following", "policy-bench/other policies", "jailbreak", "mean_cross_policy_fpr", 0.1),
        row("uniguard", "policy-following", "policy-bench/other policies", "self_harm", "mean_cross_policy_fpr", 0.3),
        row("jailbreak", "policy-following", "policy-bench/other policies", "jailbreak", "mean_cross_policy_fpr", 0.05),
    ]


def test_uniguard_against_its_sources_says_per_policy_which_is_ahead():
    results = _results()
    assert uniguard_versus_sources(results) is None  # no MultiTaskGuard in this run
    results["scorers"].append(_scorer("multitask", "multitask", POLICIES))
    results["results"] += [
        _result("multitask", "policy-bench", "jailbreak", "f1", 0.7),
        _result("multitask", "policy-bench", "self_harm", "f1", 0.6),
    ]
    assert uniguard_versus_sources(results).splitlines() == [
        "| policy | UniGuard | TaskGuard | MultiTaskGuard | verdict |",
        "|---|---|---|---|---|",
        "| jailbreak | 0.800 | 0.500 | 0.700 | ahead of both |",
        "| self_harm | 0.600 | 0.900 | 0.600 | behind TaskGuard |",
        "",
        "The UniGuard is ahead of both on 1 of 2 policies.",
    ]
    results["results"][-1]["value"] = 0.95
    assert "| self_harm | 0.600 | 0.900 | 0.950 | behind TaskGuard and MultiTaskGuard |" in uniguard_versus_sources(results)
    results["results"][3]["value"] = 0.6
    results["results"][-1]["value"] = 0.6
    assert "| self_harm | 0.600 | 0.600 | 0.600 | tied with TaskGuard and MultiTaskGuard |" in uniguard_versus_sources(results)


def test_real_text_table_averages_policies_reads_pooled_benign_and_bolds_the_better_side():
    results = _results()
    assert real_text_table(results) is None
    results["results"] += _real_text_rows()
    assert real_text_table(results).splitlines() == [
        "| mean | UniGuard | TaskGuard | keyword |",
        "|---|---|---|---|",
        "| offline-corpora harmful vs benign, AUPRC | **0.900** | – | 0.500 |",
        "| offline-corpora StrongREJECT, each category under its own policy: recall at 1% FPR | **0.700** | 0.500 | – |",
        "| offline-corpora real benign requests, FPR (all registers) | 0.300 | – | **0.100** |",
        "| policy-following cross-policy FPR (mean over policies) | 0.200 | **0.050** | – |",
    ]


def test_report_has_step_times_tables_skipped_suites_and_the_config(tmp_path):
    out = _run_folder(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text("policies: [jailbreak, self_harm]\ngenerate: {num_per_label: 4}\n")
    report = write_report(out, config, "test machine").read_text()
    assert "- run finished: 2026-11-28 01:02 UTC" in report and "- machine: test machine" in report
    assert "| generate | 10.0 |" in report and "| **total** | 15.0 |" in report
    assert "| mean of 2 policies | **0.700** | **0.700** | 0.400 |" in report
    assert "- public: skipped; offline" in report
    assert "![search](eval/search.png)" in report and "num_per_label: 4" in report
    assert "## Real text and policy following" not in report


def test_publish_copies_report_and_plots_and_fills_the_readme_block(tmp_path):
    results = _results()
    results["results"] += _real_text_rows()
    out = _run_folder(tmp_path, results)
    config = tmp_path / "run.yaml"
    config.write_text("policies: [jailbreak]\n")
    write_report(out, config, "test machine")
    readme = tmp_path / "README.md"
    readme.write_text("# intro\n<!-- reproduce-results:start -->\nold table\n<!-- reproduce-results:end -->\nrest\n")
    publish_to_docs(out, tmp_path / "docs", readme)

    results_md = (tmp_path / "docs" / "results.md").read_text()
    assert "![search](results/search.png)" in results_md and (tmp_path / "docs" / "results" / "search.png").exists()
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# intro\n") and text.endswith("<!-- reproduce-results:end -->\nrest\n")
    assert headline_table(results) in text and "run finished: 2026-11-28 01:02 UTC" in text
    assert real_text_table(results) in text and real_text_table(results) in results_md

    readme.write_text("# no markers\n")
    with pytest.raises(GuardkitError, match="reproduce-results:start"):
        publish_to_docs(out, tmp_path / "docs", readme)
