"""`guardkit generate`: policies -> requests -> generator -> filters -> self-reflection -> augmentation -> splits -> folder.

Work is streamed: requests go to the backend in small chunks; each finished request's candidates are appended
to candidates.jsonl, then filtered and judged right away, so the progress bar shows accepted examples and a
(policy, label) stops receiving requests as soon as it has enough. Rerunning on the same folder replays
candidates.jsonl (verdicts included, nothing is judged twice) and carries on with the unfinished requests.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from guardkit.config import save_config
from guardkit.data.io import SPLITS, split_file
from guardkit.data.schema import rows_to_dataset
from guardkit.errors import GuardkitError
from guardkit.generate.augmentation import BUILTIN_JAILBREAK_TEMPLATES, augment_policy_rows
from guardkit.generate.backends import GeneratorBackend, get_backend
from guardkit.generate.card import render_card
from guardkit.generate.config import PLAN_FIELDS, GenerateConfig
from guardkit.generate.filtering import (
    Decontaminator,
    EmbeddingIndex,
    Embedder,
    MinHashIndex,
    exact_key,
    load_reference_texts,
    normalise_text,
)
from guardkit.generate.parsing import parse_generated_texts, parse_list_continuation
from guardkit.generate.prompting import Response, generation_prompt
from guardkit.generate.reflection import CachedJudge, ChatJudge, Judge, LogitJudge
from guardkit.generate.requests import GenerationRequest, example_pool, plan_requests, stable_seed
from guardkit.generate.seeds import load_seed_material, seeds_per_behaviour
from guardkit.generate.splits import assign_splits
from guardkit.generate.store import CandidateStore
from guardkit.policies import Policy, load_policies

logger = logging.getLogger(__name__)
LABELS = ("safe", "unsafe")


class Selector:
    """Decides, candidate by candidate in log order, which generated texts become rows.

    Cheap filters first (length, decontamination, exact and MinHash duplicates, copies of policy examples),
    then embedding near-duplicates, then the per-(policy, label) quota, and only then the judge, the one
    expensive step. Dropped candidates stay indexed, so their near-copies are dropped without a judgement.
    """

    def __init__(
        self,
        policies: dict[str, Policy],
        config: GenerateConfig,
        embedder: Embedder,
        judge: CachedJudge | None,
        references: Sequence[str],
    ):
        self.policies = policies
        self.config = config
        self.embedder = embedder
        self.judge = judge
        policy_examples = [normalise_text(text) for policy in policies.values() for text, _ in policy.all_examples()]
        self.example_keys = {exact_key(text) for text in policy_examples}
        self.seen_keys: set[str] = set()
        self.minhash = MinHashIndex(config.minhash_threshold, policy_examples)
        self.embeddings = EmbeddingIndex(config.embedding_threshold, embedder.embed(policy_examples))
        self.decontaminator = Decontaminator(references, config.decontaminate_ngram) if references else None
        self.dropped: Counter[str] = Counter()
        self.judged: Counter[tuple[str, str]] = Counter()
        self.agreed: Counter[tuple[str, str]] = Counter()
        self.relabelled = 0
        self.accepted: list[dict] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.vectors: dict[str, np.ndarray] = {}

    def needs(self, policy: str, label: str) -> bool:
        return self.counts[(policy, label)] < self.config.num_per_label

    def all_done(self) -> bool:
        return not any(self.needs(policy, label) for policy in self.policies for label in LABELS)

    def _cheap_filter(self, text: str) -> str | None:
        """Why `text` is dropped before embedding, or None."""
        if not self.config.min_chars <= len(text) <= self.config.max_chars:
            return "length"
        if self.decontaminator is not None and self.decontaminator.is_contaminated(text):
            return "contaminated"
        key = exact_key(text)
        if key in self.example_keys:
            return "copies_policy_example"
        if key in self.seen_keys:
            return "exact_duplicate"
        self.seen_keys.add(key)
        match = self.minhash.add(text)
        if match:
            return "copies_policy_example" if match == "reference" else "near_duplicate_minhash"
        return None

    def add(self, candidates: Sequence[dict]) -> None:
        survivors = []
        for candidate in candidates:
            text = normalise_text(candidate["text"])
            reason = self._cheap_filter(text)
            if reason:
                self.dropped[reason] += 1
            else:
                survivors.append((candidate, text))
        vectors = self.embedder.embed([text for _, text in survivors]) if survivors else []
        to_judge: dict[str, list[tuple[dict, str, np.ndarray]]] = defaultdict(list)
        for (candidate, text), vector in zip(survivors, vectors):
            match = self.embeddings.add(vector)
            if match:
                self.dropped["copies_policy_example" if match == "reference" else "near_duplicate_embedding"] += 1
            elif self.config.reflection != "relabel" and not self.needs(candidate["policy"], candidate["label"]):
                self.dropped["over_quota"] += 1
            else:
                to_judge[candidate["policy"]].append((candidate, text, vector))
        for policy_id, items in to_judge.items():
            reflect = self.config.reflection != "off"
            verdicts = self.judge.verdicts(self.policies[policy_id], [text for _, text, _ in items]) if reflect else [None] * len(items)
            for (candidate, text, vector), verdict in zip(items, verdicts):
                self._decide(candidate, text, vector, verdict, reflect)

    def _decide(self, candidate: dict, text: str, vector: np.ndarray, verdict, reflect: bool) -> None:
        policy, intended = candidate["policy"], candidate["label"]
        label, source, rationale = intended, "generated", candidate.get("rationale") or f"asked for {candidate['kind']}: {candidate['behaviour']}"
        if reflect:
            if verdict is None:
                self.dropped["judge_no_verdict"] += 1
                return
            self.judged[(policy, intended)] += 1
            if verdict.label == intended:
                self.agreed[(policy, intended)] += 1
            elif self.config.reflection == "drop":
                self.dropped["judge_disagreed"] += 1
                return
            else:
                label, source = verdict.label, "generated:relabelled"
                rationale = f"asked for {candidate['kind']} ({candidate['behaviour']}); the judge found it {label}: {verdict.rationale}"
                self.relabelled += 1
        if not self.needs(policy, label):
            self.dropped["over_quota"] += 1
            return
        self.counts[(policy, label)] += 1
        self.vectors[candidate["id"]] = vector
        self.accepted.append({"origin": candidate["id"], "policy": policy, "label": label, "text": text, "source": source, "rationale": rationale})


def _check_resumable(output: Path, config: GenerateConfig, policies: Sequence[Policy]) -> None:
    """Refuse to mix runs: a folder resumes only with the options that decide what its candidates mean."""
    previous_file = output / "generation.yaml"
    if previous_file.exists():
        previous = yaml.safe_load(previous_file.read_text(encoding="utf-8")) or {}
        current = asdict(config)
        changed = [name for name in PLAN_FIELDS if name in previous and previous[name] != current[name]]
        if changed:
            listed = ", ".join(f"{name}: {previous[name]!r} -> {current[name]!r}" for name in changed)
            raise GuardkitError(
                f"{output} was generated with other options ({listed}); resume with the same ones "
                f"(guardkit generate --config {previous_file}) or write to a new --output folder"
            )
    for policy in policies:
        saved = output / "policies" / f"{policy.id}.yaml"
        if saved.exists() and Policy.from_yaml(saved) != policy:
            raise GuardkitError(
                f"policy '{policy.id}' changed since {output} was started; its candidates were made for the old text: "
                "write to a new --output folder"
            )


def _validate(config: GenerateConfig) -> None:
    problems = []
    if config.num_per_label < 1:
        problems.append("--num-per-label must be at least 1")
    if config.texts_per_request < 1:
        problems.append("--texts-per-request must be at least 1")
    if config.max_rounds < 1 or config.oversample <= 0:
        problems.append("--max-rounds must be at least 1 and --oversample above 0")
    if not (config.validation_fraction >= 0 and config.test_fraction >= 0 and config.validation_fraction + config.test_fraction < 1):
        problems.append("--validation-fraction and --test-fraction must be >= 0 and sum to less than 1")
    for name in ("hard_negative_fraction", "augment_jailbreak_fraction", "augment_obfuscate_fraction"):
        if not 0 <= getattr(config, name) <= 1:
            problems.append(f"--{name.replace('_', '-')} must be between 0 and 1")
    if config.batch_size < 1 or config.concurrency < 1:
        problems.append("--batch-size and --concurrency must be at least 1")
    if config.max_retries < 0 or config.parse_retries < 0:
        problems.append("--max-retries and --parse-retries must be 0 or more")
    if config.min_chars > config.max_chars:
        problems.append("--min-chars must not exceed --max-chars")
    if problems:
        raise GuardkitError("; ".join(problems))


def _backend_options(config: GenerateConfig) -> dict:
    return dict(
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
        batch_size=config.batch_size,
        device=config.device,
        base_url=config.base_url,
        api_key_env=config.api_key_env,
        concurrency=config.concurrency,
        requests_per_minute=config.requests_per_minute,
        request_timeout=config.request_timeout,
        max_retries=config.max_retries,
        retry_backoff=config.retry_backoff,
    )


def _make_judge(config: GenerateConfig) -> Judge:
    backend = config.judge_backend or config.backend
    model = config.judge or config.generator
    if backend == "transformers":
        return LogitJudge(model, config.judge_few_shot, config.batch_size, config.device)
    options = {**_backend_options(config), "temperature": 0.0, "top_p": 1.0}
    return ChatJudge(get_backend(backend)(model, **options), config.parse_retries)


def _interleave(plans: Sequence[list[GenerationRequest]]) -> list[GenerationRequest]:
    """Round-robin over policies and labels, so early chunks cover every policy."""
    queues = [list(plan) for plan in plans]
    ordered = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


class Generation:
    """One run of `guardkit generate` over a folder."""

    def __init__(self, config: GenerateConfig):
        _validate(config)
        self.config = config
        self.policies = {policy.id: policy for policy in load_policies(config.policies)}
        if not self.policies:
            raise GuardkitError("no policies given; pass shipped ids (guardkit policies list) or policy YAML files")
        self.output = Path(config.output)
        self.started = time.monotonic()

    def run(self) -> int:
        config, output = self.config, self.output
        _check_resumable(output, config, list(self.policies.values()))
        (output / "policies").mkdir(parents=True, exist_ok=True)
        save_config(config, output / "generation.yaml")
        for policy in self.policies.values():
            (output / "policies" / f"{policy.id}.yaml").write_text(policy.to_yaml(), encoding="utf-8")
        self.store = CandidateStore(output / "candidates.jsonl")
        try:
            return self._run()
        finally:
            self.store.close()

    def _run(self) -> int:
        config = self.config
        self.backend: GeneratorBackend = get_backend(config.backend)(config.generator, **_backend_options(config))
        self.style = self.backend.default_prompt_style() if config.prompt_style == "auto" else config.prompt_style
        self.embedder = Embedder(config.encoder, device=config.device)
        seeds = load_seed_material(config.seed_corpora)
        self.seed_material = seeds
        unsafe_seeds = seeds_per_behaviour(list(self.policies.values()), seeds.prompts, self.embedder.embed)
        self.ranked_pools = {policy_id: self._ranked_pools(policy, unsafe_seeds.get(policy_id, {})) for policy_id, policy in self.policies.items()}
        needs_judge = config.reflection != "off" or len(self.policies) > 1
        self.judge = _make_judge(config) if needs_judge else None
        cached_judge = CachedJudge(self.judge, self.store) if self.judge else None
        references = [text for spec in config.decontaminate for text in load_reference_texts(spec)]
        self.selector = Selector(self.policies, config, self.embedder, cached_judge, references)
        self.requests_done: Counter[tuple[str, str]] = Counter()
        self._generate_rounds()
        self.backend.close()
        balanced = self._balanced()
        self._write(balanced, self._cross_policy_rows(cached_judge, balanced))
        if config.push_to_hub:
            from guardkit.hub import push_folder

            push_folder(self.output, config.push_to_hub)
        return 0

    # ---------------------------------------------------------------- generation

    def _ranked_pools(self, policy: Policy, unsafe_seeds: dict[str, list[str]]) -> dict[tuple[str, str], list[str]]:
        """Few-shot candidates per (kind, behaviour), most similar to the behaviour first (base encoder)."""
        kinds = (("unsafe", policy.disallowed), ("hard_negative", policy.disallowed), ("safe", policy.allowed))
        pools = {(kind, behaviour): example_pool(policy, kind, unsafe_seeds.get(behaviour, ())) for kind, behaviours in kinds for behaviour in behaviours}
        texts = sorted({text for pool in pools.values() for text in pool})
        vectors = dict(zip(texts, self.embedder.embed(texts)))
        queries = sorted({behaviour for _, behaviour in pools})
        query_vectors = dict(zip(queries, self.embedder.embed([f"{policy.name}: {behaviour}" for behaviour in queries])))
        ranked = {}
        for (kind, behaviour), pool in pools.items():
            similarity = np.array([vectors[text] @ query_vectors[behaviour] for text in pool])
            ranked[(kind, behaviour)] = [pool[index] for index in np.argsort(-similarity, kind="stable")]
        return ranked

    def _requests_per_label(self, round_index: int) -> dict[str, dict[str, int]]:
        config = self.config
        first = math.ceil(config.num_per_label * config.oversample / config.texts_per_request)
        plan: dict[str, dict[str, int]] = {}
        for policy in self.policies:
            plan[policy] = {}
            for label in LABELS:
                deficit = config.num_per_label - self.selector.counts[(policy, label)]
                if round_index == 0:
                    # Fixed, not deficit-based: a resumed run must plan the same first round as the original.
                    plan[policy][label] = first
                elif deficit > 0:
                    done = self.requests_done[(policy, label)]
                    per_request = self.selector.counts[(policy, label)] / done if done else 0.0
                    plan[policy][label] = min(first, math.ceil(deficit / max(per_request, 0.5)))
        return plan

    def _generate_rounds(self) -> None:
        config = self.config
        by_round: dict[int, list[dict]] = defaultdict(list)
        for candidate in self.store.candidates:
            by_round[int(candidate["request_id"].split("/")[0][1:])].append(candidate)
        needed = len(self.policies) * len(LABELS) * config.num_per_label
        with tqdm(desc="generating", unit="request", total=0, dynamic_ncols=True) as bar:
            for round_index in range(config.max_rounds):
                if round_index and self.selector.all_done():
                    break
                plans = [
                    plan_requests(
                        self.policies[policy_id],
                        round_index,
                        {label: count},
                        config.seed,
                        config.texts_per_request,
                        config.hard_negative_fraction,
                        self.ranked_pools[policy_id],
                    )
                    for policy_id, counts in self._requests_per_label(round_index).items()
                    for label, count in counts.items()
                ]
                requests = _interleave(plans)
                # Replay what an interrupted run already stored for this round before generating more.
                self.selector.add(by_round.pop(round_index, []))
                for request in requests:
                    if request.id in self.store.finished:
                        self.requests_done[(request.policy, request.label)] += 1
                pending = [request for request in requests if request.id not in self.store.finished]
                bar.total += len(requests)
                bar.update(len(requests) - len(pending))
                bar.set_postfix(round=round_index, accepted=f"{sum(self.selector.counts.values())}/{needed}")
                self._run_pending(pending, bar, needed)

    def _chunk_size(self) -> int:
        return self.config.batch_size * 2 if self.backend.name == "transformers" else self.config.concurrency * 2

    def _run_pending(self, pending: list[GenerationRequest], bar, needed: int) -> None:
        while pending:
            wanted = [request for request in pending if self.selector.needs(request.policy, request.label)]
            bar.total -= len(pending) - len(wanted)
            chunk, pending = wanted[: self._chunk_size()], wanted[self._chunk_size() :]
            if not chunk:
                break
            fresh: list[dict] = []
            todo = chunk
            while todo:
                retry: list[GenerationRequest] = []
                by_id = {request.id: request for request in todo}
                prompts = [generation_prompt(request, self.policies[request.policy], self.style, self.config.max_new_tokens) for request in todo]

                def on_response(response: Response) -> None:
                    request = by_id[response.prompt_id]
                    candidates = self._parse(request, response)
                    if candidates:
                        self.store.record_done(request.id, candidates)
                        fresh.extend(self.store.candidates[-len(candidates) :])
                        self.requests_done[(request.policy, request.label)] += 1
                        bar.update(1)
                        return
                    give_up = self.store.unparseable_attempts[request.id] + 1 > self.config.parse_retries
                    logger.warning("unparseable response for %s%s: %r", request.id, " (giving up)" if give_up else "", response.text[:200])
                    self.store.record_unparseable(request.id, response.text, give_up)
                    if give_up:
                        self.requests_done[(request.policy, request.label)] += 1
                        bar.update(1)
                    else:
                        retry.append(request)

                self.backend.run(prompts, on_response)
                todo = retry
            self.selector.add(fresh)
            bar.set_postfix(accepted=f"{sum(self.selector.counts.values())}/{needed}", candidates=len(self.store.candidates))

    def _parse(self, request: GenerationRequest, response: Response) -> list[dict]:
        if self.style == "list":
            parsed = parse_list_continuation(response.text, len(request.examples) + 1, response.truncated)
        else:
            parsed = parse_generated_texts(response.text)
        return [
            {
                "id": f"{request.id}#{index}",
                "policy": request.policy,
                "kind": request.kind,
                "label": request.label,
                "behaviour": request.behaviour,
                "text": item.text,
                "rationale": item.rationale,
            }
            for index, item in enumerate(parsed[: request.count])
        ]

    # ---------------------------------------------------------------- assembly

    def _balanced(self) -> dict[str, list[dict]]:
        """Accepted rows per policy with both labels cut to the smaller count (kept in acceptance order)."""
        per_policy: dict[str, list[dict]] = {}
        for policy_id in self.policies:
            rows = [row for row in self.selector.accepted if row["policy"] == policy_id]
            size = min(sum(row["label"] == label for row in rows) for label in LABELS)
            kept, taken = [], Counter()
            for row in rows:
                if taken[row["label"]] < size:
                    kept.append(row)
                    taken[row["label"]] += 1
            self.selector.dropped["class_balance"] += len(rows) - len(kept)
            if size < self.config.num_per_label:
                logger.warning(
                    "policy '%s': only %d accepted examples per label of %d asked; rerun with a larger --max-rounds or "
                    "--oversample (it resumes), or use a stronger --generator / --judge",
                    policy_id, size, self.config.num_per_label,
                )
            per_policy[policy_id] = kept
        return per_policy

    def _cross_policy_rows(self, judge: CachedJudge | None, balanced: dict[str, list[dict]]) -> list[dict]:
        """For each policy, texts accepted for other policies, labelled by the judge under this policy."""
        if judge is None or len(self.policies) < 2:
            return []
        per_policy = self.config.cross_policy_per_policy or max(1, self.config.num_per_label // 2)
        rows = []
        for target in self.policies.values():
            others = [row for policy_id, policy_rows in balanced.items() if policy_id != target.id for row in policy_rows]
            rng = random.Random(stable_seed(self.config.seed, "cross_policy", target.id))
            unsafe = [row for row in others if row["label"] == "unsafe"]
            safe = [row for row in others if row["label"] == "safe"]
            # Mostly texts unsafe elsewhere: they are the negatives an instruction-conditioned guard must learn.
            take_unsafe = min(len(unsafe), math.ceil(per_policy * 0.75))
            chosen = rng.sample(unsafe, take_unsafe) + rng.sample(safe, min(len(safe), per_policy - take_unsafe))
            verdicts = judge.verdicts(target, [row["text"] for row in chosen])
            for row, verdict in zip(chosen, verdicts):
                if verdict is not None:
                    rows.append(
                        {
                            "origin": row["origin"],
                            "policy": target.id,
                            "label": verdict.label,
                            "text": row["text"],
                            "source": f"cross_policy:{row['policy']}",
                            "rationale": f"judged under {target.id}: {verdict.rationale}",
                        }
                    )
        return rows

    def _write(self, balanced: dict[str, list[dict]], cross_rows: list[dict]) -> None:
        config, output = self.config, self.output
        # The card marks a finished folder (make's target): a stale one must not vouch for half-written splits.
        (output / "README.md").unlink(missing_ok=True)
        templates = {**BUILTIN_JAILBREAK_TEMPLATES, **self.seed_material.templates}
        default_rows, augmentation = [], Counter()
        for policy_id, rows in balanced.items():
            rng = random.Random(stable_seed(config.seed, "augment", policy_id))
            augmented, counts = augment_policy_rows(rows, templates, config.augment_jailbreak_fraction, config.augment_obfuscate_fraction, rng)
            default_rows += augmented
            augmentation.update(counts)
        splits = assign_splits(
            {(row["origin"], row["policy"], row["label"]) for rows in balanced.values() for row in rows},
            config.validation_fraction,
            config.test_fraction,
            config.seed,
        )
        configs = {"default": default_rows, "multitask": default_rows + cross_rows}
        split_rows: dict[str, dict[str, int]] = {}
        counts: dict[str, dict] = {}
        for config_name, rows in configs.items():
            split_rows[config_name] = {}
            counts[config_name] = defaultdict(lambda: defaultdict(dict))
            for split in SPLITS:
                members = [row for row in rows if splits[row["origin"]] == split]
                random.Random(stable_seed(config.seed, "order", config_name, split)).shuffle(members)
                path = split_file(output, split, config_name)
                path.unlink(missing_ok=True)  # an empty split is left out (datasets cannot load it), also after a rerun
                if members:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    rows_to_dataset(members).to_parquet(str(path))
                    split_rows[config_name][split] = len(members)
                for policy_id in self.policies:
                    for label in LABELS:
                        counts[config_name][policy_id][label][split] = sum(
                            row["policy"] == policy_id and row["label"] == label for row in members
                        )
        stats = self._stats(balanced, augmentation, counts, cross_rows)
        (output / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False), encoding="utf-8")
        examples = self._example_rows(default_rows, splits)
        card = render_card(
            name=f"guardkit synthetic guardrail data: {', '.join(self.policies)}",
            policies=list(self.policies.values()),
            split_rows=split_rows,
            stats=stats,
            generation=asdict(config),
            examples=examples,
            license=config.license,
        )
        card.save(output / "README.md")
        generated = sum(len(rows) for rows in balanced.values())
        print(
            f"wrote {output}: {split_rows['default']} rows (default), {split_rows['multitask']} (multitask); "
            f"{stats['accepted_per_minute']:.1f} accepted examples/minute in this run"
        )
        if not generated:
            raise GuardkitError(
                f"no example was accepted for any policy; candidates are kept in {output / 'candidates.jsonl'}. "
                "Rerun with a larger --max-rounds or --oversample, --reflection relabel, or a stronger --generator"
            )

    def _example_rows(self, rows: list[dict], splits: dict[str, str]) -> list[dict]:
        examples = []
        for policy_id in self.policies:
            for label in LABELS:
                match = next((row for row in rows if row["policy"] == policy_id and row["label"] == label and splits[row["origin"]] == "train"), None)
                if match:
                    examples.append(match)
        return examples

    def _stats(self, balanced: dict[str, list[dict]], augmentation: Counter, counts: dict, cross_rows: list[dict]) -> dict:
        selector = self.selector
        elapsed = time.monotonic() - self.started
        accepted = sum(len(rows) for rows in balanced.values())
        statuses = Counter(self.store.finished.values())
        return {
            "generator": self.backend.describe(),
            "prompt_style": self.style,
            "judge": self._judge_description(),
            "requests": {
                "done": statuses.get("done", 0),
                "failed": statuses.get("failed", 0),
                "unparseable": sum(self.store.unparseable_attempts.values()),
            },
            "candidates": len(self.store.candidates),
            "filtering": {reason: selector.dropped[reason] for reason in sorted(selector.dropped)},
            "reflection": [
                {"policy": policy, "label": label, "judged": selector.judged[(policy, label)], "agreed": selector.agreed[(policy, label)]}
                for policy in self.policies
                for label in LABELS
            ],
            "relabelled": selector.relabelled,
            "augmentation": dict(sorted(augmentation.items())),
            "cross_policy_rows": dict(Counter(row["label"] for row in cross_rows)),
            "counts": {name: {policy: {label: dict(splits) for label, splits in labels.items()} for policy, labels in value.items()} for name, value in counts.items()},
            "diversity": [self._diversity(policy_id, rows) for policy_id, rows in balanced.items()],
            "seed_corpora": self.seed_material.provenance,
            "elapsed_seconds": round(elapsed, 1),
            "accepted_per_minute": accepted / (elapsed / 60) if elapsed > 0 else 0.0,
        }

    def _judge_description(self) -> dict:
        if self.judge is None:
            return {"kind": "none", "model": "none"}
        description = self.judge.describe()
        kind = "verdict-token logits, KV-cached policy prefix" if isinstance(self.judge, LogitJudge) else "chat, JSON verdict"
        return {**description, "kind": kind, "model": self.config.judge or self.config.generator}

    def _diversity(self, policy_id: str, rows: list[dict]) -> dict:
        texts = [row["text"] for row in rows]
        bigrams = [gram for text in texts for gram in _bigrams(text)]
        vectors = np.stack([self.selector.vectors[row["origin"]] for row in rows]) if rows else np.zeros((0, 1))
        similarity = None
        if len(vectors) > 1:
            matrix = vectors @ vectors.T
            similarity = float((matrix.sum() - np.trace(matrix)) / (len(vectors) * (len(vectors) - 1)))
        return {
            "policy": policy_id,
            "texts": len(texts),
            "distinct2": round(len(set(bigrams)) / len(bigrams), 3) if bigrams else None,
            "similarity": round(similarity, 3) if similarity is not None else None,
        }


def _bigrams(text: str) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[index : index + 2]) for index in range(len(words) - 1)]


def generate(config: GenerateConfig) -> int:
    """Run `guardkit generate`; see GenerateConfig for the options."""
    return Generation(config).run()
