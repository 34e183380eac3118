"""Merge methods against results computed by hand on small tensors, and the per-layer-group merge plan."""

import pytest
import torch

from guardkit.merge.merging import GLOBAL_GROUP, GroupingError, LayerGroups, MergePlan
from guardkit.merge.methods import METHODS, UnknownMethod, ZeroWeights, get_method
from guardkit.merge.methods.dare import drop_and_rescale
from guardkit.merge.methods.ties import disjoint_mean, sorted_magnitudes, trim_to_density


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_registry_holds_the_four_methods_and_refuses_unknown_names():
    assert set(METHODS) == {"linear", "task_arithmetic", "ties", "dare"}
    assert [spec.name for spec in get_method("ties").hyperparameters] == ["density"]
    assert get_method("linear").uses_base is False
    with pytest.raises(UnknownMethod, match="choose one of dare, linear, task_arithmetic, ties"):
        get_method("slerp")


def test_linear_is_the_weighted_average_or_the_weighted_sum():
    values = torch.stack([t(1, 2), t(3, 6)])
    # (1·[1,2] + 3·[3,6]) / 4 = [10, 20] / 4
    assert torch.equal(get_method("linear")(values, [1, 3]), t(2.5, 5.0))
    assert torch.equal(get_method("linear")(values, [1, 3], normalize=False), t(10, 20))
    with pytest.raises(ZeroWeights, match="sum to 0"):
        get_method("linear")(values, [0, 0])


def test_task_arithmetic_sums_weighted_task_vectors():
    deltas = torch.stack([t(1, -1), t(0, 2)])
    # 0.5·[1,-1] + 1·[0,2] = [0.5, 1.5]
    assert torch.equal(get_method("task_arithmetic")(deltas, [0.5, 1.0]), t(0.5, 1.5))


def test_trim_keeps_the_largest_magnitudes_of_each_source():
    deltas = torch.stack([t(3, -1, 0.5, 2), t(-1, -2, 1, 4)])
    magnitudes = sorted_magnitudes(deltas)["magnitudes"]
    assert torch.equal(magnitudes, torch.stack([t(0.5, 1, 2, 3), t(1, 1, 2, 4)]))
    assert torch.equal(trim_to_density(deltas, 0.5, magnitudes), torch.stack([t(3, 0, 0, 2), t(0, -2, 0, 4)]))
    assert torch.equal(trim_to_density(deltas, 0.25, magnitudes), torch.stack([t(3, 0, 0, 0), t(0, 0, 0, 4)]))
    assert torch.equal(trim_to_density(deltas, 1.0, magnitudes), deltas)
    assert torch.equal(trim_to_density(deltas, 0.0, magnitudes), torch.zeros(2, 4))


def test_disjoint_mean_elects_a_sign_and_averages_only_the_agreeing_sources():
    deltas = torch.stack([t(3, 0, 0, 2, 2), t(0, -2, 0, 4, -3)])
    # entry 0: only +3 → 3; entry 1: only -2 → -2; entry 2: nobody → 0;
    # entry 3: both positive → (2+4)/2 = 3; entry 4: sum -1 elects '-', only -3 agrees → -3
    assert torch.equal(disjoint_mean(deltas, [1, 1]), t(3, -2, 0, 3, -3))
    # weights scale before the vote: 2·2 = 4 > 3 elects '+' at entry 4; entry 3 → (4 + 4)/2
    assert torch.equal(disjoint_mean(deltas, [2, 1]), t(6, -2, 0, 4, 4))


def test_ties_trims_votes_and_averages():
    deltas = torch.stack([t(3, -1, 0.5, 2), t(-1, -2, 1, 4)])
    # trimmed to half: [3,0,0,2] and [0,-2,0,4]; signs [+,-,0,+]; disjoint means [3,-2,0,3]
    assert torch.equal(get_method("ties")(deltas, [1, 1], density=0.5), t(3, -2, 0, 3))
    # weight 0.5 on the second: [3,0,0,2] and [0,-1,0,2] → [3,-1,0,(2+2)/2]
    assert torch.equal(get_method("ties")(deltas, [1, 0.5], density=0.5), t(3, -1, 0, 2))


def test_dare_drops_at_the_given_rate_rescales_and_is_seeded():
    deltas = torch.ones(2, 10_000)
    dropped = drop_and_rescale(deltas, 0.25, torch.Generator().manual_seed(7))
    kept = dropped != 0
    assert torch.equal(dropped[kept].unique(), torch.tensor([1 / 0.75]))
    assert abs((~kept).float().mean().item() - 0.25) < 0.02
    assert torch.equal(dropped, drop_and_rescale(deltas, 0.25, torch.Generator().manual_seed(7)))
    assert not torch.equal(dropped, drop_and_rescale(deltas, 0.25, torch.Generator().manual_seed(8)))


def test_dare_without_drops_is_task_arithmetic_or_ties_without_trimming():
    deltas = torch.stack([t(2, -1, 1), t(-4, 1, 3)])
    dare = get_method("dare")
    summed = dare(deltas, [0.5, 0.25], drop_rate=0.0, combine="linear", generator=torch.Generator().manual_seed(0))
    assert torch.equal(summed, t(0, -0.25, 1.25))
    # signs of [2-4, -1+1, 1+3] = [-,0,+] → [-4, 0, (1+3)/2]
    elected = dare(deltas, [1, 1], drop_rate=0.0, combine="ties", generator=torch.Generator().manual_seed(0))
    assert torch.equal(elected, t(-4, 0, 2))


BERT_NAMES = [
    "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.LayerNorm.weight",
    "bert.encoder.layer.0.attention.self.query.weight",
    "bert.encoder.layer.1.output.dense.weight",
    "bert.encoder.layer.2.output.dense.weight",
    "bert.pooler.dense.weight",
    "classifier.weight",
    "classifier.bias",
]


def test_layer_groups_follow_bert_names():
    groups = LayerGroups.build(BERT_NAMES, "block")
    assert groups.names == ("embeddings", "blocks.0", "blocks.1", "blocks.2", "head")
    assert groups.of_parameter["bert.encoder.layer.1.output.dense.weight"] == "blocks.1"
    assert groups.of_parameter["bert.pooler.dense.weight"] == "head"
    paired = LayerGroups.build(BERT_NAMES, "block", block_group_size=2)
    assert paired.names == ("embeddings", "blocks.0-1", "blocks.2", "head")
    assert LayerGroups.build(BERT_NAMES, "global").names == (GLOBAL_GROUP,)
    with pytest.raises(GroupingError, match="--granularity global"):
        LayerGroups.build(["weight", "bias"], "block")


def test_plan_adds_merged_task_vectors_to_the_base_and_averages_the_head():
    names = BERT_NAMES[2:4] + ["classifier.weight"]
    base = {name: t(1, 1) for name in names}
    first = {name: t(2, 3) for name in names}
    second = {name: t(4, 5) for name in names}
    groups = LayerGroups.build(names, "block")
    plan = MergePlan(get_method("task_arithmetic"), {}, groups, frozenset({"classifier.weight"}), [first, second], base)
    weights = {"blocks.0": [1.0, 0.0], "blocks.1": [0.5, 0.5], "head": [1.0, 3.0]}
    merged = dict(plan.merged_tensors(weights, {}))
    assert torch.equal(merged[names[0]], t(2, 3))
    # [1,1] + 0.5·[1,2] + 0.5·[3,4]
    assert torch.equal(merged[names[1]], t(3, 4))
    # the head has no task vector: the normalised average (1·[2,3] + 3·[4,5]) / 4
    assert torch.equal(merged["classifier.weight"], t(3.5, 4.5))
    with pytest.raises(GroupingError, match="no weights for layer group"):
        list(plan.merged_tensors({"blocks.0": [1, 1]}, {}))


def test_reused_inputs_give_the_same_bits_and_draws_do_not_depend_on_other_parameters():
    names = BERT_NAMES[2:4]
    torch.manual_seed(0)
    base = {name: torch.randn(64).half() for name in names}
    sources = [{name: torch.randn(64).half() for name in names} for _ in range(2)]
    for source in sources:
        source["bert.embeddings.position_ids"] = torch.arange(4)
    weights = {GLOBAL_GROUP: [0.7, 0.4]}

    def merge(method, hyperparameters, reuse, parameters=sources):
        plan = MergePlan(
            get_method(method), {}, LayerGroups.build(names, "global"), frozenset(), parameters, base, seed=3, reuse_inputs=reuse
        )
        return dict(plan.merged_tensors(weights, hyperparameters)), plan

    once, _ = merge("ties", {"density": 0.3}, reuse=False)
    reused, plan = merge("ties", {"density": 0.3}, reuse=True)
    again = dict(plan.merged_tensors(weights, {"density": 0.3}))
    assert all(torch.equal(once[name], reused[name]) and torch.equal(once[name], again[name]) for name in names)
    assert once[names[0]].dtype == torch.float16
    assert torch.equal(once["bert.embeddings.position_ids"], torch.arange(4))
    drawn, _ = merge("dare", {"drop_rate": 0.5}, reuse=False)
    alone, _ = merge("dare", {"drop_rate": 0.5}, reuse=False, parameters=[{names[1]: source[names[1]]} for source in sources])
    assert torch.equal(alone[names[1]], drawn[names[1]])
