from pathlib import Path

from datasets import Features
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

from guardkit.data.schema import FEATURES
from guardkit.generate.card import model_label, render_card, size_category
from guardkit.generate.config import GenerateConfig
from guardkit.policies import load_policies

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"


def _stats():
    """Stats in the shape `guardkit generate` writes to stats.json (guardkit.generate.pipeline)."""
    counts = {"pet_safety": {"safe": {"train": 5, "validation": 1, "test": 2}, "unsafe": {"train": 5, "validation": 1, "test": 2}}}
    return {
        "rows_per_label": {"min": 8, "max": 8, "per_policy": {"pet_safety": 8}},
        "sources": {"pet_safety": {"unsafe": {"generated": 5, "corpus:advbench": 3}, "safe": {"corpus:freshqa": 6, "generated": 2, "fragment:tau2-documents": 4}}},
        "background_rows": {"pet_safety": 6},
        "document_fragment_rows": {"pet_safety": 4},
        "cross_policy_matrix": {"pet_safety": {"safe": {"pet_safety": 0}, "unsafe": {"pet_safety": 8}}},
        "candidates": {"admitted": 40, "by_source": {"corpus:advbench": 12, "corpus:freshqa": 20, "generated": 8}},
        "labeller": {
            "components": ["examples-lr", "examples-knn"],
            "weights": {"examples-lr": 1.0, "examples-knn": 0.25},
            "abstain_margin": 0.5,
            "prior_shift": 3.0,
            "scope_gate": 0.3,
            "scope_share": 1.0,
            "scope_evidence": {"pet_safety": 3},
            "abstained": {"pet_safety": 4},
            "policy_bench_estimate": {"pet_safety": {"rows": 20, "abstention": 0.1, "balanced_accuracy": 0.9}},
        },
        "reflection": {"agreed": 8, "relabelled": 2, "dropped_labeller_abstained": 1},
        "filtering": {"exact_duplicate": 3, "contaminated": 2},
        "decontamination": {"sets": {"policy-bench": 704, "offline-corpora": 900, "xstest.parquet": 450}, "removed": {"offline-corpora": 2}, "notes": []},
        "generator": {"backend": "transformers", "model": "smollm2-135m", "temperature": 0.9, "top_p": 0.95},
        "prompt_style": "list",
        "requests": {"done": 9, "failed": 1, "unparseable": 2},
        "generated_accepted": 10,
        "generated_accepted_per_minute": 12.5,
        "augmentation": {"leetspeak": 1, "jailbreak:grandma": 1},
        "corpora": [
            {
                "name": "advbench", "package": "pyrit==1.1.0", "licence": "MIT", "homepage": "https://github.com/Azure/PyRIT",
                "description": "harmful behaviours", "counts": {"train": 400, "eval": 120},
            }
        ],
        "counts": {"default": counts, "multitask": counts},
    }


def test_card_front_matter_parses_back(tmp_path):
    policies = load_policies([str(FIXTURE)])
    config = GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), decontaminate=["/somewhere/on/disk/xstest.parquet"], push_to_hub="org/pets")
    from dataclasses import asdict

    examples = [{"policy": "pet_safety", "label": "unsafe", "source": "generated", "text": "Feed | the dog\ngrapes"}]
    card = render_card(
        name="pets", policies=policies, split_rows={"default": {"train": 10, "validation": 2, "test": 4}, "multitask": {"train": 12, "test": 4}},
        stats=_stats(), generation=asdict(config), examples=examples, license="apache-2.0",
    )
    card.save(tmp_path / "README.md")
    parsed = DatasetCard.load(tmp_path / "README.md")
    data = parsed.data
    assert data.task_categories == ["text-classification"]
    assert {"synthetic", "guardrails", "test-fixture"} <= set(data.tags)
    assert data.license == "apache-2.0" and data.language == ["en"] and data.size_categories == ["n<1K"]
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert set(configs) == {"default", "multitask"}
    assert configs["default"]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    assert [files["split"] for files in configs["multitask"]["data_files"]] == ["train", "test"]  # no empty split
    infos = DatasetInfosDict.from_dataset_card_data(data)
    assert infos["multitask"].features == FEATURES and infos["default"].features["label"].names == ["safe", "unsafe"]
    assert isinstance(infos["default"].features, Features)
    body = parsed.text
    assert "Feeding pets foods that are toxic to them" in body  # the policy's full text
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in body and "pyrit==1.1.0" in body
    assert "| `pet_safety` | unsafe | corpus:advbench | 3 |" in body  # rows per policy x label x source
    assert "up to 6\nbenign corpus texts" in body and "up to 4 passages" in body and "| fragment:tau2-documents | 4 |" in body
    assert "| `pet_safety` | 20 | 0.10 | 0.900 |" in body  # the labeller's accuracy estimate
    assert "less\nthan 0.3, or another content policy claims it (a scope rating that, times 1.0, exceeds" in body  # the scope settings of the run
    assert "out of scope for the others): `pet_safety` 3." in body
    assert "5 of the 8 unsafe rows of the balanced selection were written by the generator" in body  # and what they are worth
    assert "removed per set: offline-corpora 2" in body and "agreed 8, relabelled 2, dropped labeller abstained 1." in body
    assert "Feed \\| the dog grapes" in body
    assert "/somewhere/on/disk" not in body and "xstest.parquet 450" in body
    assert '"org/pets"' in body


def test_model_labels_never_show_local_paths(tmp_path):
    assert model_label("smollm2-135m") == "[`HuggingFaceTB/SmolLM2-135M-Instruct`](https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct)"
    assert model_label(str(tmp_path / "my-model")) == "`my-model` (a local model)"
    assert model_label("gpt-4o-mini") == "`gpt-4o-mini`"
    assert size_category(999) == "n<1K" and size_category(5000) == "1K<n<10K"


def test_card_says_why_the_generator_wrote_no_unsafe_rows(tmp_path):
    from dataclasses import asdict

    policies = load_policies([str(FIXTURE)])
    stats = _stats()
    stats["sources"]["pet_safety"]["unsafe"] = {"corpus:advbench": 8}
    stats["generated_unsafe_set_aside"] = 7
    card = render_card(
        name="pets", policies=policies, split_rows={"default": {"train": 10, "test": 4}, "multitask": {"train": 12, "test": 4}},
        stats=stats, generation=asdict(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path))), examples=[], license="apache-2.0",
    )
    body = card.text
    assert "No unsafe row was written by the generator" in body and "(7\n  text-policy pairs)" in body
    assert "were written by the generator\n" not in body
