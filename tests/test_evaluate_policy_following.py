"""policy-following: the cross-policy annotations of policy-bench, the unseen policies and their rows, the suite.

The unseen policies (benchmarks/policy_following/) are held out of training and hand-labelled; the suite
runs here on tiny untrained guards, whose numbers mean nothing: what is checked is which cells and
slices each scorer is measured on.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tiny_models import save_tiny_guard
from transformers import AutoTokenizer

from guardkit.assets import resolve_model
from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.evaluate import plots
from guardkit.evaluate.baselines import build_baseline
from guardkit.evaluate.config import DEFAULT_POLICY_BENCH_DIR, DEFAULT_POLICY_FOLLOWING_DIR, EvaluateConfig
from guardkit.evaluate.decontamination import NearDuplicateIndex, normalise
from guardkit.evaluate.harness import EvaluationContext, read_policy_bench
from guardkit.evaluate.report import render_report
from guardkit.evaluate.results import build_results, read_results
from guardkit.evaluate.runner import run_evaluation
from guardkit.evaluate.scorers import GuardScorer
from guardkit.evaluate.suites import get_suites
from guardkit.evaluate.suites.policy_following import (
    CROSS_MEAN_DATASET,
    CROSS_MEAN_METRIC,
    CROSS_PREFIX,
    KINDS,
    MEAN_POLICY,
    UNSEEN_DATASET,
    cross_policy_cells,
    held_out_texts,
    load_unseen,
    read_rows,
)
from guardkit.policies import shipped_policies

UNSAFE = LABEL2ID["unsafe"]
SHIPPED = shipped_policies()
BENCH_DIR = Path(DEFAULT_POLICY_BENCH_DIR)
FOLLOWING_DIR = Path(DEFAULT_POLICY_FOLLOWING_DIR)
UNSEEN = load_unseen(FOLLOWING_DIR)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Columns of the matrix the suite tests run: a pair guard covers both, the TaskGuard the first only.
COLUMNS = ("jailbreak", "violent_crimes")


def bench_rows() -> dict[str, list]:
    return {policy_id: read_policy_bench(BENCH_DIR / f"{policy_id}.jsonl") for policy_id in SHIPPED}


# --- the cross-policy annotations of policy-bench -------------------------------------------------


def test_every_unsafe_policy_bench_row_is_annotated_with_other_shipped_policies():
    for policy_id, rows in bench_rows().items():
        for row in rows:
            if row.label != UNSAFE:
                assert row.also_unsafe_under is None and row.ambiguous_under is None, row.text
                continue
            also, ambiguous = set(row.also_unsafe_under), set(row.ambiguous_under)
            assert also | ambiguous <= set(SHIPPED) - {policy_id}, row.text
            assert not also & ambiguous, f"both unsafe and ambiguous under {also & ambiguous}: {row.text}"
            # The bank assistant's scope makes every other policy's request off-topic, unless it is about banking.
            if policy_id != "banking_assistant":
                assert "banking_assistant" in also | ambiguous, row.text


def test_policy_bench_rows_read_the_same_with_or_without_the_annotations(tmp_path):
    path = tmp_path / "bench.jsonl"
    unsafe_row = {"text": "a", "label": "unsafe", "policy": "jailbreak", "hard_negative": False}
    unsafe_row |= {"also_unsafe_under": ["violent_crimes"], "ambiguous_under": [], "reviewer": "unknown fields are ignored"}
    rows = [unsafe_row, {"text": "b", "label": "safe", "policy": "jailbreak", "hard_negative": True}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    unsafe, safe = read_policy_bench(path)
    assert (unsafe.label, unsafe.also_unsafe_under, unsafe.ambiguous_under) == (UNSAFE, ("violent_crimes",), ())
    assert (safe.hard_negative, safe.also_unsafe_under) == (True, None)
    path.write_text(json.dumps({**rows[0], "ambiguous_under": "prompt_injection"}) + "\n", encoding="utf-8")
    with pytest.raises(GuardkitError, match=r"bench.jsonl:1: .*ambiguous_under must be a list"):
        read_policy_bench(path)


def test_a_cell_holds_the_rows_safe_under_the_column_and_the_diagonal_its_own():
    sources = {policy_id: [row for row in rows if row.label == UNSAFE] for policy_id, rows in bench_rows().items()}
    cells, excluded = cross_policy_cells(sources, "violent_crimes")
    assert cells["violent_crimes"] == [row.text for row in sources["violent_crimes"]]
    jailbreak = sources["jailbreak"]
    kept = [row.text for row in jailbreak if "violent_crimes" not in (*row.also_unsafe_under, *row.ambiguous_under)]
    assert cells["jailbreak"] == kept and 0 < len(kept) < len(jailbreak)
    assert excluded["jailbreak"]["also_unsafe"] + excluded["jailbreak"]["ambiguous"] == len(jailbreak) - len(kept)
    # Every other policy's unsafe row is off-topic for the bank's assistant: only its diagonal is left.
    assert list(cross_policy_cells(sources, "banking_assistant")[0]) == ["banking_assistant"]


# --- the unseen policies and their rows -----------------------------------------------------------


def test_the_unseen_policies_are_valid_new_and_have_their_own_examples():
    assert len(UNSEEN) >= 6
    for policy_id, (policy, _) in UNSEEN.items():
        assert policy_id not in SHIPPED
        assert 4 <= len(policy.examples.safe) <= 8 and 4 <= len(policy.examples.unsafe) <= 8, policy_id
        assert len(policy.hard_negatives) >= 2, policy_id


@pytest.mark.parametrize("policy_id", list(UNSEEN))
def test_each_unseen_policy_has_enough_rows_of_every_kind(policy_id):
    _, rows = UNSEEN[policy_id]
    kinds = Counter(row.kind for row in rows)
    assert len(rows) >= 48 and set(kinds) == set(KINDS)
    # Roughly 40% in scope unsafe, 30% in scope safe, 30% off scope.
    assert 0.35 <= kinds["in_scope_unsafe"] / len(rows) <= 0.45
    assert all(0.25 <= kinds[kind] / len(rows) <= 0.35 for kind in KINDS[1:])
    assert all(row.label == (UNSAFE if row.kind == "in_scope_unsafe" else LABEL2ID["safe"]) for row in rows)


def test_unseen_rows_are_fresh_texts():
    """No row repeats, even nearly, policy-bench, any policy's examples or another row."""
    references = [text for policy in SHIPPED.values() for text, _ in policy.all_examples()]
    references += [text for policy, _ in UNSEEN.values() for text, _ in policy.all_examples()]
    references += [row.text for rows in bench_rows().values() for row in rows]
    index = NearDuplicateIndex(references)
    texts = [row.text for _, rows in UNSEEN.values() for row in rows]
    assert not [text for text in texts if index.match(text)]
    assert len({normalise(text) for text in texts}) == len(texts)
    examples = {text for policy, _ in UNSEEN.values() for text, _ in policy.all_examples()}
    assert set(held_out_texts(FOLLOWING_DIR)) >= set(texts) | examples


def test_policy_lengths_span_short_and_long_instructions():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    long = []
    for policy_id, (policy, _) in UNSEEN.items():
        full_text = "\n".join([policy.name, policy.description, *policy.disallowed, *policy.allowed])
        lengths = (tokens(policy.instruction()), tokens(full_text))
        if lengths[0] >= 200:
            long.append(policy_id)
            assert all(200 <= length <= 400 for length in lengths), (policy_id, lengths)
        else:
            assert all(60 <= length <= 200 for length in lengths), (policy_id, lengths)
    assert len(long) >= 2


def test_malformed_unseen_rows_say_where(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "t", "label": "unsafe", "policy": "p", "kind": "off_scope"}) + "\n", encoding="utf-8")
    with pytest.raises(GuardkitError, match=r"rows.jsonl:1: .*off_scope row is safe"):
        read_rows(path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "jailbreak.yaml").write_text(SHIPPED["jailbreak"].to_yaml(), encoding="utf-8")
    with pytest.raises(GuardkitError, match="must not reuse shipped policy ids"):
        load_unseen(tmp_path)


# --- the suite ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guards(tmp_path_factory, tiny_bert_dir) -> dict[str, Path]:
    """A TaskGuard for jailbreak, a pair guard with room for every instruction, and one with room for the short ones."""
    root = tmp_path_factory.mktemp("policy-following-guards")
    return {
        "task": save_tiny_guard(root / "task", tiny_bert_dir, "task", COLUMNS[:1], 128),
        "pair": save_tiny_guard(root / "pair", tiny_bert_dir, "multitask", COLUMNS, 512),
        "narrow-pair": save_tiny_guard(root / "narrow-pair", tiny_bert_dir, "multitask", COLUMNS, 256),
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, one_torch_thread, guards, tiny_bert_dir):
    config = EvaluateConfig(
        output=str(tmp_path_factory.mktemp("policy-following")),
        suite=["policy-following"],
        model=list(map(str, guards.values())),
        baseline=["keyword", "embedding-knn"],
        policies=",".join(COLUMNS),
        encoder=str(tiny_bert_dir),
        max_examples=6,
        bootstrap_resamples=20,
        batch_size=16,
    )
    scorers = [GuardScorer.load(str(folder), name, batch_size=16) for name, folder in guards.items()]
    scorers += [build_baseline(name, config) for name in config.baseline]
    context = EvaluationContext(config, scorers, {policy_id: SHIPPED[policy_id] for policy_id in COLUMNS})
    (suite,) = get_suites(["policy-following"])
    return suite.run(context)


def rows_of(outcome, **where):
    return [row for row in outcome.measurements if all(getattr(row, key) == value for key, value in where.items())]


def test_the_matrix_has_every_cell_for_each_scorer_that_can_score_the_column(outcome):
    data = outcome.data["cross-policy"]
    assert data["policies"] == list(COLUMNS) and set(data["sources"]) == set(SHIPPED)
    expected = {policy_id: set(data["rows"][policy_id]) for policy_id in COLUMNS}
    assert all(policy_id in cells and len(cells) > 5 for policy_id, cells in expected.items())
    scorers = {"task": COLUMNS[:1], "pair": COLUMNS, "narrow-pair": COLUMNS, "keyword": COLUMNS, "embedding-knn": COLUMNS}
    for model, columns in scorers.items():
        assert {row.policy for row in rows_of(outcome, model=model) if row.dataset.startswith(CROSS_PREFIX)} == set(columns)
        for policy_id in columns:
            cells = {row.dataset[len(CROSS_PREFIX) :]: row for row in rows_of(outcome, model=model, policy=policy_id)
                     if row.dataset.startswith(CROSS_PREFIX) and row.dataset != CROSS_MEAN_DATASET}
            assert set(cells) == expected[policy_id]
            for source, row in cells.items():
                assert row.metric == ("recall" if source == policy_id else "false_positive_rate")
            assert all(row.n <= 6 and 0 <= row.value <= 1 for row in cells.values())
            (mean,) = rows_of(outcome, model=model, policy=policy_id, dataset=CROSS_MEAN_DATASET)
            off_diagonal = [row.value for source, row in cells.items() if source != policy_id]
            assert mean.metric == CROSS_MEAN_METRIC and mean.value == pytest.approx(np.mean(off_diagonal))
            assert data["flag_rate"][model][policy_id][policy_id] == cells[policy_id].value


def test_unseen_policies_are_scored_by_every_scorer_but_the_task_guard(outcome):
    assert not [row for row in rows_of(outcome, model="task") if row.dataset.startswith(UNSEEN_DATASET)]
    assert any("not scored by task" in note for note in outcome.notes)
    assert set(outcome.data[UNSEEN_DATASET]["rows"]) == set(UNSEEN)
    for model in ("pair", "keyword", "embedding-knn"):
        for policy_id in [*UNSEEN, MEAN_POLICY]:
            metrics = {(row.dataset, row.metric) for row in rows_of(outcome, model=model, policy=policy_id)}
            assert metrics == {
                *((UNSEEN_DATASET, metric) for metric in ("f1", "precision", "recall", "auprc")),
                (f"{UNSEEN_DATASET}/in_scope_safe", "false_positive_rate"),
                (f"{UNSEEN_DATASET}/off_scope", "false_positive_rate"),
            }, (model, policy_id)
    # Six rows per policy, sampled across the three kinds.
    off_scope = rows_of(outcome, model="pair", dataset=f"{UNSEEN_DATASET}/off_scope")
    assert all(row.n == 2 for row in off_scope if row.policy != MEAN_POLICY)


def test_a_guard_without_room_for_a_long_instruction_skips_that_policy_and_gets_no_mean(outcome):
    scored = {row.policy for row in rows_of(outcome, model="narrow-pair") if row.dataset.startswith(UNSEEN_DATASET)}
    assert "cooking_assistant" in scored and "kids_homework_helper" not in scored and MEAN_POLICY not in scored
    refusal = "narrow-pair cannot score kids_homework_helper: the policy instruction takes"
    assert any(note.startswith(refusal) for note in outcome.notes)
    assert any("no mean over unseen policies for narrow-pair" in note for note in outcome.notes)


def test_heatmaps_and_report_show_the_matrix_and_the_unseen_table(outcome, tmp_path):
    files = plots.cross_policy_heatmaps(outcome.measurements, tmp_path, "policy-following", CROSS_PREFIX)
    models = ("task", "pair", "narrow-pair", "keyword", "embedding-knn")
    assert sorted(files) == sorted(f"cross_policy_{model}.png" for model in models)
    assert all((tmp_path / name).read_bytes().startswith(PNG_MAGIC) for name in files)
    config = EvaluateConfig(output=str(tmp_path), suite=["policy-following"], baseline=["keyword"])
    scorers = [{"name": name, "type": "model", "threshold": 0.5, "policies": [], "notes": []} for name in ("task", "pair")]
    report = render_report(build_results(config, scorers, list(COLUMNS), [outcome]), {}, {"policy-following": files})
    assert "### Cross-policy matrix" in report and "### Unseen policies" in report
    assert f"| {CROSS_MEAN_DATASET} | jailbreak | {CROSS_MEAN_METRIC} |" in report
    assert f"| {UNSEEN_DATASET}/off_scope | {MEAN_POLICY} | false_positive_rate |" in report
    assert "![cross_policy_pair.png](cross_policy_pair.png)" in report


def test_baselines_score_a_policy_they_never_saw(tmp_path, tiny_bert_dir, tiny_causal_lm_dir):
    policy, rows = UNSEEN["cooking_assistant"]
    texts = [row.text for row in rows[:3]]
    config = EvaluateConfig(
        output=str(tmp_path),
        suite=["policy-following"],
        baseline=["keyword"],
        encoder=str(tiny_bert_dir),
        judge_model=str(tiny_causal_lm_dir),
    )
    for name in ("keyword", "embedding-knn", "llm-judge"):
        scores = build_baseline(name, config).score(policy, texts)
        assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1)), name


def test_guardkit_evaluate_runs_the_suite_and_embeds_the_heatmaps(tmp_path):
    config = EvaluateConfig(
        output=str(tmp_path),
        suite=["policy-following"],
        baseline=["keyword"],
        policies="jailbreak,self_harm",
        max_examples=4,
        bootstrap_resamples=0,
    )
    assert run_evaluation(config) == 0
    results = read_results(tmp_path / "results.json")
    assert results["suites"]["policy-following"]["status"] == "ok"
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "![cross_policy_keyword.png](cross_policy_keyword.png)" in report
    assert (tmp_path / "cross_policy_keyword.png").read_bytes().startswith(PNG_MAGIC)
