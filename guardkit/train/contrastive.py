"""`guardkit train encoder`: contrastive tuning of the sentence encoder that every guard of a run shares.

The first stage of SetFit (Tunstall et al., 2022, "Efficient Few-Shot Learning Without Prompts"): pairs of
texts with the same label are pulled to cosine 1, pairs with different labels pushed to cosine 0 (mean squared
error on the cosine of their pooled embeddings), so that a linear head on the tuned embedding separates what
the base embedding mixed. Pairs are drawn under one policy at a time, each text labelled under that policy: a
text unsafe under one policy is out of another's scope, and so safe there. A share of the members are the
policy's cross-policy rows (other policies' texts, labelled under it), which keep one policy's unsafe texts
apart from another's; a share are the policy's hand-written examples and hard negatives, the most reliable
labels there are. A second term (`--base_weight`) keeps each pair member's embedding, and those of as many other
dataset rows, near the base encoder's: the pairs alone pulled the embedding toward the examples' register and lost
the general geometry that real text and other policies' texts rely on.

One encoder for all policies keeps the guards of a run on one encoder: the TaskGuards' heads and the policy
reader read it, and their UniGuard is that encoder with every head (no merge search to run). The folder is
written in the sentence-transformers layout (modules.json, 1_Pooling, 2_Normalize), so `SentenceTransformer`
loads it unchanged and `--base_model FOLDER` of `guardkit train task|multitask` reads it with its pooling.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

from guardkit.assets import hub_id_of, resolve_model
from guardkit.data.io import cross_policy_rows, load_guard_dataset
from guardkit.embeddings import pool_and_normalise
from guardkit.errors import GuardkitError
from guardkit.guard_card import dataset_ref
from guardkit.policies import Policy
from guardkit.pooling import base_pooling
from guardkit.resources import shipped_path
from guardkit.train.common import TrainingError
from guardkit.train.config import EncoderTuningConfig

CONFIG_FILE = "training.yaml"
RESULTS_FILE = "contrastive_results.json"
TEMPLATE = shipped_path("model_cards/encoder_card.md")


def _by_label(rows: list[tuple[str, int]]) -> dict[int, list[str]]:
    return {label: [text for text, row_label in rows if row_label == label] for label in (0, 1)}


class LabelledTexts:
    """One policy's labelled texts by label: its dataset rows, its cross-policy rows (texts of other policies
    labelled under it) and its own examples."""

    def __init__(self, policy: Policy, rows: list[tuple[str, int]], cross: list[tuple[str, int]] = ()):
        self.policy = policy
        self.rows = _by_label(rows)
        self.cross = _by_label(list(cross))
        self.examples = _by_label([(text, int(label == "unsafe")) for text, label in policy.all_examples()])

    def usable(self) -> bool:
        return all(self.rows[label] or self.examples[label] for label in (0, 1))

    def draw(self, label: int, example_share: float, cross_share: float, rng: random.Random) -> str:
        if self.cross[label] and rng.random() < cross_share:
            return rng.choice(self.cross[label])
        examples, rows = self.examples[label], self.rows[label]
        pool = examples if (examples and rng.random() < example_share) or not rows else rows
        return rng.choice(pool)


def draw_pairs(policies: list[LabelledTexts], per_policy: int, example_share: float, cross_share: float, seed: int) -> list[tuple[str, str, float]]:
    """`per_policy` (text, text, target cosine) pairs per policy, a quarter of each kind: (safe, safe) and
    (unsafe, unsafe) at 1, (safe, unsafe) and (unsafe, safe) at 0; shuffled. A member is a cross-policy row with
    probability `cross_share` (where the policy has some of its label), else one of the policy's examples with
    probability `example_share`, else one of its rows."""
    rng = random.Random(seed)
    pairs = []
    for labelled in policies:
        for index in range(per_policy):
            label, same = index % 2, (index // 2) % 2 == 0
            other = label if same else 1 - label
            first, second = (labelled.draw(item, example_share, cross_share, rng) for item in (label, other))
            pairs.append((first, second, 1.0 if same else 0.0))
    rng.shuffle(pairs)
    return pairs


def labelled_texts(config: EncoderTuningConfig) -> list[LabelledTexts]:
    """Every policy of the dataset with its training rows (and its cross-policy rows when --cross_share is above 0)."""
    splits, policies = load_guard_dataset(config.dataset, "default", revision=config.dataset_revision)
    train = splits["train"]
    rows: dict[str, list[tuple[str, int]]] = {}
    for text, label, policy_id in zip(train["text"], train["label"], train["policy"]):
        rows.setdefault(policy_id, []).append((text, int(label)))
    cross: dict[str, list[tuple[str, int]]] = {}
    if config.cross_share > 0:
        try:
            cross_rows = cross_policy_rows(config.dataset, config.dataset_revision, list(rows), train)
        except GuardkitError as error:
            print(f"train encoder: no cross-policy rows ({error}); pairs come from the default config alone", file=sys.stderr)
        else:
            for text, label, policy_id in zip(cross_rows["text"], cross_rows["label"], cross_rows["policy"]):
                cross.setdefault(policy_id, []).append((text, int(label)))
    labelled = [LabelledTexts(policies[policy_id], policy_rows, cross.get(policy_id, [])) for policy_id, policy_rows in rows.items()]
    unusable = [item.policy.id for item in labelled if not item.usable()]
    if unusable:
        raise TrainingError(f"{config.dataset}: no safe or no unsafe text for {', '.join(unusable)}; contrastive pairs need both labels")
    return labelled


def tune_encoder(config: EncoderTuningConfig) -> None:
    """Tune the base encoder on the dataset's pairs and write it to config.output."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    _check(config)
    labelled = labelled_texts(config)
    pairs = draw_pairs(labelled, config.pairs_per_policy, config.example_share, config.cross_share, config.seed)
    base = resolve_model(config.base_model)
    pooling = base_pooling(base)
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModel.from_pretrained(base).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = -(-len(pairs) // config.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)

    def embed(texts: list[str]):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=config.max_length, return_tensors="pt").to(device)
        return pool_and_normalise(model(**batch).last_hidden_state, batch["attention_mask"], pooling)

    anchors = sorted({text for item in labelled for label in (0, 1) for text in item.rows[label]})
    base_embedding = _base_embeddings(embed, [text for pair in pairs for text in pair[:2]] + anchors) if config.base_weight > 0 else {}
    anchor_rng = random.Random(config.seed + 1)

    def drift(texts: list[str], embeddings):
        """Mean of 1 - cosine between the tuned and the base embeddings of the texts."""
        return 1.0 - (embeddings * torch.stack([base_embedding[text] for text in texts]).to(device)).sum(dim=-1).mean()

    model.train()
    losses = []
    with tqdm(total=steps, desc="contrastive pairs", unit="step") as progress:
        for start in range(0, len(pairs), config.batch_size):
            batch = pairs[start : start + config.batch_size]
            firsts, seconds = [pair[0] for pair in batch], [pair[1] for pair in batch]
            first, second = embed(firsts), embed(seconds)
            cosine = (first * second).sum(dim=-1)
            loss = torch.nn.functional.mse_loss(cosine, torch.tensor([pair[2] for pair in batch], device=device))
            if config.base_weight > 0:
                others = anchor_rng.sample(anchors, min(len(batch), len(anchors)))
                loss = loss + config.base_weight * (drift(firsts, first) + drift(seconds, second) + drift(others, embed(others)))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            progress.update(1)
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    model.eval()
    output = Path(config.output)
    _save(model.cpu(), tokenizer, pooling, base, output, config, labelled, pairs, losses)
    print(f"encoder written to {output} ({len(pairs)} pairs over {len(labelled)} policies, {pooling} pooling)", file=sys.stderr)


def _base_embeddings(embed, texts: list[str]) -> dict:
    """The base encoder's embedding of every distinct text (in eval mode, before any step), for the term that keeps
    the tuned embeddings near it."""
    import torch
    from tqdm.auto import tqdm

    distinct = sorted(set(texts), key=len)
    embeddings = {}
    with torch.no_grad():
        for start in tqdm(range(0, len(distinct), 64), desc="base embeddings", unit="batch"):
            chunk = distinct[start : start + 64]
            embeddings.update(zip(chunk, embed(chunk).cpu()))
    return embeddings


def _check(config: EncoderTuningConfig) -> None:
    if config.pairs_per_policy < 4:
        raise TrainingError("--pairs_per_policy must be at least 4 (one pair of each kind and label)")
    for name in ("example_share", "cross_share"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise TrainingError(f"--{name} must lie in [0, 1], got {getattr(config, name)}")
    if config.batch_size < 1 or config.learning_rate <= 0 or config.max_length < 8:
        raise TrainingError("--batch_size must be at least 1, --learning_rate above 0 and --max_length at least 8")
    if config.base_weight < 0:
        raise TrainingError(f"--base_weight must be 0 (off) or above, got {config.base_weight}")


def _save(model, tokenizer, pooling: str, base: str, output: Path, config: EncoderTuningConfig, labelled, pairs, losses) -> None:
    """The tuned encoder in the sentence-transformers layout, with its card, options and training record."""
    from huggingface_hub import ModelCard, ModelCardData

    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    size = int(model.config.hidden_size)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (output / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    # The sequence length sentence-transformers reads at: the base's own setting where it has one.
    base_settings = Path(base) / "sentence_bert_config.json"
    settings = (
        json.loads(base_settings.read_text(encoding="utf-8"))
        if base_settings.is_file()
        else {"max_seq_length": int(model.config.max_position_embeddings), "do_lower_case": False}
    )
    (output / "sentence_bert_config.json").write_text(json.dumps(settings) + "\n", encoding="utf-8")
    (output / "1_Pooling").mkdir(exist_ok=True)
    pooling_config = {
        "word_embedding_dimension": size,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (output / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config, indent=2) + "\n", encoding="utf-8")
    (output / "2_Normalize").mkdir(exist_ok=True)
    (output / CONFIG_FILE).write_text(yaml.safe_dump(asdict(config), sort_keys=False), encoding="utf-8")
    per_policy = {
        item.policy.id: {
            "rows": {"safe": len(item.rows[0]), "unsafe": len(item.rows[1])},
            "cross_policy_rows": {"safe": len(item.cross[0]), "unsafe": len(item.cross[1])},
            "examples": {"safe": len(item.examples[0]), "unsafe": len(item.examples[1])},
        }
        for item in labelled
    }
    record = {
        "pairs": len(pairs),
        "steps": len(losses),
        "loss_first_20_steps": float(np.mean(losses[:20])),
        "loss_last_20_steps": float(np.mean(losses[-20:])),
        "pooling": pooling,
        "policies": per_policy,
    }
    base_on_hub = not Path(config.base_model).exists()
    dataset = dataset_ref(config.dataset, config.dataset_revision)
    card_data = ModelCardData(
        license=config.license,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        base_model=hub_id_of(config.base_model) if base_on_hub else None,
        datasets=[dataset.id] if not Path(dataset.id).exists() else None,
        tags=["guardkit", "guardrails", "sentence-transformers", "setfit-style-contrastive"],
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        base_model=hub_id_of(config.base_model),
        dataset=dataset.id,
        pooling=pooling,
        config=config,
        record=record,
    )
    card.save(output / "README.md")
    # Written last: `make reproduce` takes this file as the sign of a finished stage.
    (output / RESULTS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
