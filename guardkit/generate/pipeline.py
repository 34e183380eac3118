"""`guardkit generate`: candidates from every source -> cleaning -> the labeller -> selection -> splits -> folder.

1. Candidates: real corpus texts (their "train" side), recombinations of real parts (jailbreak templates
   around harmful requests, injection payloads hidden in benign documents), and, where a policy and label
   are still short, texts the generator writes per rule (`guardkit.generate.candidates`).
2. Cleaning, in arrival order: length bounds, decontamination against every evaluation set (and
   --decontaminate), exact, MinHash and embedding near-duplicates, copies of the policies' own examples.
3. The labeller labels every surviving candidate under every policy, or abstains
   (`guardkit.generate.labeller`), and names the rules each unsafe row breaks. A generated text is relabelled
   or dropped when the labeller disagrees with what it was asked for (self-reflection, --reflection).
4. Selection: per policy and label --num-per-label rows, no source above --max-source-share of them, the
   safe side mixing texts unsafe under other policies (out of scope), safe texts on the policy's topic
   (hard negatives) and ordinary requests of every register.
5. Splits by text (a text is in one split under every policy), obfuscation copies, parquet, stats, card.

Resumable: generated candidates and LLM verdicts are appended to candidates.jsonl as they arrive; a rerun on
the same folder replays them and carries on. Corpus candidates and recombinations are re-derived (seeded).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from guardkit.config import save_config
from guardkit.data.evaluation_sets import DEFAULT_POLICY_BENCH_DIR, DEFAULT_POLICY_FOLLOWING_DIR, evaluation_texts, read_policy_bench
from guardkit.data.io import SPLITS, split_file
from guardkit.data.schema import CORPUS_SOURCE_PREFIX, rows_to_dataset
from guardkit.embeddings import SentenceEncoder, nearest_mean_similarity
from guardkit.errors import GuardkitError
from guardkit.generate.augmentation import BUILTIN_JAILBREAK_TEMPLATES, augment_policy_rows
from guardkit.generate.backends import GeneratorBackend, get_backend
from guardkit.generate.backends.transformers import DTYPES as GENERATOR_DTYPES
from guardkit.generate.candidates import (
    FRAGMENT_SOURCE_PREFIX,
    GENERATED_SOURCE,
    Candidate,
    corpus_candidates,
    document_fragment_candidates,
    injection_recombinations,
    jailbreak_recombinations,
    scope_evidence,
)
from guardkit.generate.card import render_card
from guardkit.generate.config import ALL_CORPORA, PLAN_FIELDS, GenerateConfig
from guardkit.generate.filtering import Decontaminator, EmbeddingIndex, MinHashIndex, exact_key, load_reference_texts, normalise_text
from guardkit.generate.labeller import BENIGN, HARMFUL, Decision, Labeller, LabellerSettings, reflect
from guardkit.generate.parsing import parse_generated_texts, parse_list_continuation
from guardkit.generate.prompting import Response, generation_prompt
from guardkit.generate.reflection import CachedJudge, ChatJudge, Judge, LogitJudge
from guardkit.generate.requests import GenerationRequest, plan_requests
from guardkit.generate.splits import assign_splits
from guardkit.generate.store import CandidateStore
from guardkit.policies import Policy, load_policies
from guardkit.stable_random import stable_fraction, stable_seed

logger = logging.getLogger(__name__)
LABELS = ("safe", "unsafe")
# A safe text is on a policy's topic (a hard negative there) when it is this similar to the policy's unsafe examples.
TOPICAL_SIMILARITY = 0.4
SAFE_GROUPS = ("cross-policy", "topical", "general")
# Document fragments labelled per run: each policy draws its own at random from a pool this many times larger.
FRAGMENT_POOL_FACTOR = 3
# The most texts a top-up round asks for per text still wanted, however few the earlier rounds' texts kept.
MAX_TOP_UP_OVERSAMPLING = 8.0


def top_up_oversampling(kept: int, asked: int, first: float) -> float:
    """Texts to ask for per text still wanted in a top-up round: `first` (--oversample) when none were asked yet,
    else what the share kept so far needs (1 / kept share), between 1 and MAX_TOP_UP_OVERSAMPLING.

    Asking for just the deficit left policies whose texts the labeller mostly rejects (election misinformation
    from a 135M generator) short after every round.
    """
    if asked == 0:
        return first
    return min(max(asked / kept, 1.0), MAX_TOP_UP_OVERSAMPLING) if kept else MAX_TOP_UP_OVERSAMPLING


class Cleaner:
    """Cheap filters, then embedding near-duplicates, in arrival order; dropped texts stay indexed so their copies go too."""

    def __init__(self, config: GenerateConfig, references: dict[str, list[str]], protected: Sequence[str], protected_vectors: np.ndarray):
        self.config = config
        self.decontaminators = {name: Decontaminator(texts, config.decontaminate_ngram, config.decontaminate_boilerplate, config.decontaminate_coverage) for name, texts in references.items() if texts}
        self.protected_keys = {exact_key(text) for text in protected}
        self.seen_keys: set[str] = set()
        self.minhash = MinHashIndex(config.minhash_threshold, list(protected))
        self.embeddings = EmbeddingIndex(config.embedding_threshold, protected_vectors)
        self.dropped: Counter[str] = Counter()
        self.contaminated: Counter[str] = Counter()

    def cheap(self, text: str) -> str | None:
        """Why `text` is dropped before it is embedded, or None."""
        if not self.config.min_chars <= len(text) <= self.config.max_chars:
            return "length"
        for name, decontaminator in self.decontaminators.items():
            if decontaminator.is_contaminated(text):
                self.contaminated[name] += 1
                return "contaminated"
        key = exact_key(text)
        if key in self.protected_keys:
            return "copies_policy_example"
        if key in self.seen_keys:
            return "exact_duplicate"
        self.seen_keys.add(key)
        match = self.minhash.add(text)
        if match:
            return "copies_policy_example" if match == "reference" else "near_duplicate_minhash"
        return None

    def embedded(self, vector: np.ndarray) -> str | None:
        match = self.embeddings.add(vector)
        if match:
            return "copies_policy_example" if match == "reference" else "near_duplicate_embedding"
        return None


@dataclass
class Admitted:
    """A candidate that survived cleaning: its text as kept, embedding and decision under each policy."""

    candidate: Candidate
    text: str
    vector: np.ndarray
    decisions: dict[str, Decision]


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
    if config.background_per_policy < 0:
        problems.append("--background-per-policy must be 0 or more")
    if config.document_fragments_per_policy < 0:
        problems.append("--document-fragments-per-policy must be 0 or more")
    if config.texts_per_request < 1:
        problems.append("--texts-per-request must be at least 1")
    if config.max_rounds < 0 or config.oversample <= 0:
        problems.append("--max-rounds must be 0 or more and --oversample above 0")
    if not (config.validation_fraction >= 0 and config.test_fraction >= 0 and config.validation_fraction + config.test_fraction < 1):
        problems.append("--validation-fraction and --test-fraction must be >= 0 and sum to less than 1")
    for name in (
        "hard_negative_fraction",
        "augment_jailbreak_fraction",
        "augment_obfuscate_fraction",
        "min_generated_fraction",
        "max_source_share",
        "cross_policy_share",
        "topical_share",
    ):
        if not 0 <= getattr(config, name) <= 1:
            problems.append(f"--{name.replace('_', '-')} must be between 0 and 1")
    if config.cross_policy_share + config.topical_share > 1:
        problems.append("--cross-policy-share and --topical-share must add up to at most 1")
    if config.dtype not in GENERATOR_DTYPES:
        problems.append(f"--dtype must be one of {', '.join(GENERATOR_DTYPES)}, got '{config.dtype}'")
    if config.batch_size < 1 or config.concurrency < 1:
        problems.append("--batch-size and --concurrency must be at least 1")
    if config.max_retries < 0 or config.parse_retries < 0 or config.max_per_corpus < 0:
        problems.append("--max-retries, --parse-retries and --max-per-corpus must be 0 or more")
    if config.jailbreak_recombinations < 0 or config.injection_recombinations < 0:
        problems.append("--jailbreak-recombinations and --injection-recombinations must be 0 or more")
    if config.decontaminate_boilerplate < 2:
        problems.append("--decontaminate-boilerplate must be at least 2 (an n-gram of one evaluation text is always content)")
    if not 0 < config.decontaminate_coverage <= 1:
        problems.append("--decontaminate-coverage must be above 0 and at most 1")
    if config.min_chars > config.max_chars:
        problems.append("--min-chars must not exceed --max-chars")
    if not _requested_corpora(config) and config.jailbreak_recombinations + config.injection_recombinations == 0 and not config.generated_unsafe:
        problems.append("with no corpora and no recombinations only the generator writes texts, and it writes no unsafe rows without --generated-unsafe")
    if problems:
        raise GuardkitError("; ".join(problems))


def _backend_options(config: GenerateConfig) -> dict:
    return dict(
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
        batch_size=config.batch_size,
        device=config.device,
        dtype=config.dtype,
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


def _requested_corpora(config: GenerateConfig) -> list[str]:
    """--corpora as names (each value may hold several, separated by commas); none for 'none'."""
    names = [name for value in config.corpora for name in value.split(",") if name.strip()]
    return [] if names == ["none"] else names


def corpus_names(config: GenerateConfig) -> list[str]:
    """The corpora the run reads: every installed one for 'all' (missing packages named in the log)."""
    from guardkit.data.corpora import CORPORA, installed

    names = _requested_corpora(config)
    if not names:
        return []
    if ALL_CORPORA in names:
        present, missing = installed([name for name, corpus in CORPORA.items() if not corpus.eval_only])
        if missing:
            logger.warning("corpora not installed, skipped: %s", ", ".join(missing))
        return present
    unknown = sorted(set(names) - set(CORPORA))
    if unknown:
        raise GuardkitError(f"unknown corpora: {', '.join(unknown)}; registered: {', '.join(CORPORA)} (or 'all', 'none')")
    eval_only = [name for name in names if CORPORA[name].eval_only]
    if eval_only:
        raise GuardkitError(f"{', '.join(eval_only)}: kept for evaluation only, never training material")
    return names


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
        self.admitted: dict[str, Admitted] = {}
        # Kept apart from `admitted`: background only, never selected, generated against or recombined.
        self.fragments: dict[str, Admitted] = {}
        self.sources: Counter[str] = Counter()
        self.reflection: Counter[str] = Counter()
        self.generated_unsafe_set_aside = 0
        self.requests_done: Counter[tuple[str, str]] = Counter()
        self.generation_seconds = 0.0
        self.generated_accepted = 0

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

    # ---------------------------------------------------------------- setup

    def _labeller_settings(self) -> LabellerSettings:
        defaults = LabellerSettings()
        return LabellerSettings(
            weights=defaults.weights,
            abstain_margin=defaults.abstain_margin if self.config.abstain_margin is None else self.config.abstain_margin,
            prior_shift=defaults.prior_shift if self.config.prior_shift is None else self.config.prior_shift,
            scope_gate=defaults.scope_gate,
            scope_share=defaults.scope_share,
            llm_band=defaults.llm_band,
            lr_c=defaults.lr_c,
        )

    def _references(self) -> tuple[dict[str, list[str]], list[str]]:
        """Every evaluation set (policy-bench, policy-following, offline-corpora's eval side, cached public
        benchmarks) and each --decontaminate set, by name."""

        references, notes = evaluation_texts(DEFAULT_POLICY_BENCH_DIR, {"policy-following": Path(DEFAULT_POLICY_FOLLOWING_DIR)})
        for spec in self.config.decontaminate:
            references[Path(spec).name or spec] = load_reference_texts(spec)
        return references, notes

    def _run(self) -> int:
        config = self.config
        self.encoder = SentenceEncoder(config.encoder, batch_size=64, device=config.device)
        self.judge = _make_judge(config) if config.labeller_llm else None
        self.labeller = Labeller(
            self.encoder, self._labeller_settings(), CachedJudge(self.judge, self.store) if self.judge else None, list(self.policies.values())
        )
        references, self.reference_notes = self._references()
        self.reference_counts = {name: len(texts) for name, texts in references.items()}
        protected = sorted({normalise_text(text) for policy in self.policies.values() for text, _ in policy.all_examples()})
        self.cleaner = Cleaner(config, references, protected, self.encoder.encode(protected))
        self.corpora = corpus_names(config)
        corpus = corpus_candidates(self.corpora, config.max_per_corpus, config.seed)
        self._admit(corpus, "corpus", as_scope_evidence=True)
        self._admit(self._recombinations(), "recombined")
        self.backend: GeneratorBackend | None = None
        if config.max_rounds > 0:
            self.backend = get_backend(config.backend)(config.generator, **_backend_options(config))
            self.style = self.backend.default_prompt_style() if config.prompt_style == "auto" else config.prompt_style
            self._generate_rounds()
            self.backend.close()
        # Last, so that the fragments change nothing the other candidates went through (deduplication among them).
        if self.corpora and config.document_fragments_per_policy:
            fragments = document_fragment_candidates(FRAGMENT_POOL_FACTOR * config.document_fragments_per_policy, config.seed)
            self._admit(fragments, "document fragments", into=self.fragments)
        selected = {policy_id: self._select(policy_id) for policy_id in self.policies}
        background = {policy_id: self._background(policy_id, selected[policy_id]) for policy_id in self.policies}
        fragments = {policy_id: self._fragment_background(policy_id) for policy_id in self.policies}
        self._write(selected, background, fragments)
        if config.push_to_hub:
            from guardkit.hub import push_folder

            push_folder(self.output, config.push_to_hub)
        return 0

    # ---------------------------------------------------------------- admission and labelling

    def _admit(
        self, candidates: Sequence[Candidate], what: str, into: dict[str, Admitted] | None = None, as_scope_evidence: bool = False
    ) -> list[Admitted]:
        """Clean, embed and label `candidates` under every policy and keep them in `into` (default: the admitted
        candidates); returns those admitted. With `as_scope_evidence`, the cleaned texts of a category one policy of
        the run covers are the labeller's scope evidence before any is labelled."""
        survivors = []
        for candidate in candidates:
            text = normalise_text(candidate.text)
            reason = self.cleaner.cheap(text)
            if reason:
                self.cleaner.dropped[reason] += 1
            else:
                survivors.append((candidate, text))
        if not survivors:
            return []
        vectors = self.encoder.encode([text for _, text in survivors], progress=len(survivors) > 2000)
        kept = []
        for (candidate, text), vector in zip(survivors, vectors):
            reason = self.cleaner.embedded(vector)
            if reason:
                self.cleaner.dropped[reason] += 1
            else:
                kept.append(Admitted(candidate, text, vector, {}))
        if as_scope_evidence:
            self.labeller.set_scope_evidence(scope_evidence([item.candidate for item in kept], self.policies))
        self._label(kept, what)
        for item in kept:
            (self.admitted if into is None else into)[item.candidate.id] = item
            self.sources[item.candidate.source] += 1
        return kept

    def _label(self, items: list[Admitted], what: str) -> None:
        if not items:
            return
        vectors = np.stack([item.vector for item in items])
        for policy_id, policy in tqdm(self.policies.items(), desc=f"labelling {what} ({len(items)} texts)", unit="policy", leave=False):
            inherited = [self._inherited(item, policy_id) for item in items]
            todo = [index for index, decision in enumerate(inherited) if decision is None]
            if todo:
                decisions = self.labeller.label(
                    policy,
                    [items[index].text for index in todo],
                    vectors[todo],
                    priors=[items[index].candidate.prior for index in todo],
                    intended_rules=[items[index].candidate.intended_rule if items[index].candidate.target_policy == policy_id else None for index in todo],
                )
                for index, decision in zip(todo, decisions):
                    inherited[index] = decision
            for item, decision in zip(items, inherited):
                item.decisions[policy_id] = self._set_aside_generated_unsafe(item, self._reflect(item, policy_id, decision))

    def _inherited(self, item: Admitted, policy_id: str) -> Decision | None:
        """The decision that holds by construction (forced) or through the parts of a recombination, else None."""
        candidate = item.candidate
        if policy_id in candidate.forced:
            label = candidate.forced[policy_id]
            rules = self.labeller.model(self.policies[policy_id]).unsafe_rules(item.vector, None) if label == "unsafe" else ()
            return Decision(label, 1.0 if label == "unsafe" else 0.0, {"by-construction": 1.0}, rules)
        if not candidate.parts:
            return None
        parts = [self.admitted[part].decisions[policy_id] for part in candidate.parts if part in self.admitted]
        if len(parts) < len(candidate.parts):
            return Decision(None, 0.5, {"inherited": 0.0})
        if any(part.label == "unsafe" for part in parts):
            rules = tuple(dict.fromkeys(rule for part in parts if part.label == "unsafe" for rule in part.rules))
            return Decision("unsafe", max(part.score for part in parts), {"inherited": 1.0}, rules)
        if all(part.label == "safe" for part in parts):
            return Decision("safe", max(part.score for part in parts), {"inherited": -1.0}, ())
        return Decision(None, 0.5, {"inherited": 0.0})

    def _reflect(self, item: Admitted, policy_id: str, decision: Decision) -> Decision:
        """Self-reflection on a generated text under the policy it was asked for (see `reflect`)."""
        candidate = item.candidate
        if candidate.target_policy != policy_id:
            return decision
        decision, outcome = reflect(decision, candidate.intended_label, self.config.reflection)
        self.reflection[outcome] += 1
        return decision

    def _set_aside_generated_unsafe(self, item: Admitted, decision: Decision) -> Decision:
        """Without --generated-unsafe a generated text is never an unsafe row: an unsafe verdict on it becomes an abstention."""
        if self.config.generated_unsafe or item.candidate.source != GENERATED_SOURCE or decision.label != "unsafe":
            return decision
        self.generated_unsafe_set_aside += 1
        return Decision(None, decision.score, {**decision.components, "generated-unsafe-set-aside": 1.0})

    def _recombinations(self) -> list[Candidate]:
        from guardkit.data.corpora import jailbreak_templates

        config = self.config
        harmful = [item.candidate for item in self.admitted.values() if item.candidate.prior == HARMFUL and not item.candidate.forced and self._unsafe_anywhere(item)]
        templates = jailbreak_templates("train", max_chars=config.max_chars) if "jailbreak" in self.policies and self.corpora else {}
        injections = [item.candidate for item in self.admitted.values() if "prompt_injection" in item.candidate.forced]
        documents = [item.candidate for item in self.admitted.values() if item.candidate.prior == "benign" and len(item.text) >= 200]
        recombined = jailbreak_recombinations(templates, harmful, config.jailbreak_recombinations, config.seed, config.max_chars)
        if "prompt_injection" in self.policies:
            recombined += injection_recombinations(documents, injections, config.injection_recombinations, config.seed, config.max_chars)
        return recombined

    def _unsafe_anywhere(self, item: Admitted) -> bool:
        return any(decision.label == "unsafe" for decision in item.decisions.values())

    # ---------------------------------------------------------------- generation

    def _available(self, policy_id: str, label: str) -> int:
        return sum(item.decisions[policy_id].label == label for item in self.admitted.values())

    def _generated_available(self, policy_id: str, label: str) -> int:
        return sum(
            item.candidate.source == GENERATED_SOURCE and item.candidate.target_policy == policy_id and item.decisions[policy_id].label == label
            for item in self.admitted.values()
        )

    def _wanted(self, policy_id: str, label: str) -> int:
        """Texts still to generate for (policy, label): the quota's deficit, or at least the generated share of safe rows;
        no unsafe texts without --generated-unsafe."""
        config = self.config
        if label == "unsafe" and not config.generated_unsafe:
            return 0
        deficit = config.num_per_label - self._available(policy_id, label)
        floor = math.ceil(config.num_per_label * config.min_generated_fraction) - self._generated_available(policy_id, label) if label == "safe" else 0
        return max(deficit, floor, 0)

    def _oversampling(self, policy_id: str, label: str, round_index: int) -> float:
        if round_index == 0:
            return self.config.oversample
        requests = sum(request_id.split("/")[1:3] == [policy_id, label] for request_id in self.store.finished)
        return top_up_oversampling(self._generated_available(policy_id, label), requests * self.config.texts_per_request, self.config.oversample)

    def _generate_rounds(self) -> None:
        config = self.config
        by_round: dict[int, list[dict]] = defaultdict(list)
        for candidate in self.store.candidates:
            by_round[int(candidate["request_id"].split("/")[0][1:])].append(candidate)
        started = time.monotonic()
        accepted_before = sum(1 for item in self.admitted.values() if item.candidate.source == GENERATED_SOURCE)
        with tqdm(desc="generating", unit="request", total=0, dynamic_ncols=True) as bar:
            for round_index in range(config.max_rounds):
                # Replay what an interrupted run already stored for this round before planning more.
                self._admit_generated(by_round.pop(round_index, []))
                wanted = {(policy_id, label): self._wanted(policy_id, label) for policy_id in self.policies for label in LABELS}
                if not any(wanted.values()):
                    break
                plans = [
                    plan_requests(
                        self.policies[policy_id],
                        round_index,
                        {label: math.ceil(count * self._oversampling(policy_id, label, round_index) / config.texts_per_request)},
                        config.seed,
                        config.texts_per_request,
                        config.hard_negative_fraction,
                        max_example_words=config.max_example_words,
                    )
                    for (policy_id, label), count in wanted.items()
                    if count > 0
                ]
                requests = _interleave(plans)
                pending = [request for request in requests if request.id not in self.store.finished]
                bar.total += len(requests)
                bar.update(len(requests) - len(pending))
                self._run_pending(pending, bar)
        self.generation_seconds = time.monotonic() - started
        self.generated_accepted = sum(
            1
            for item in self.admitted.values()
            if item.candidate.source == GENERATED_SOURCE and item.decisions[item.candidate.target_policy].label is not None
        ) - accepted_before

    def _still_wanted(self, request: GenerationRequest) -> bool:
        return self._wanted(request.policy, request.label) > 0

    def _run_pending(self, pending: list[GenerationRequest], bar) -> None:
        chunk_size = self.config.batch_size * 2 if self.backend.name == "transformers" else self.config.concurrency * 2
        while pending:
            wanted = [request for request in pending if self._still_wanted(request)]
            bar.total -= len(pending) - len(wanted)
            chunk, pending = wanted[:chunk_size], wanted[chunk_size:]
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
                        bar.update(1)
                        return
                    give_up = self.store.unparseable_attempts[request.id] + 1 > self.config.parse_retries
                    logger.warning("unparseable response for %s%s: %r", request.id, " (giving up)" if give_up else "", response.text[:200])
                    self.store.record_unparseable(request.id, response.text, give_up)
                    if give_up:
                        bar.update(1)
                    else:
                        retry.append(request)

                self.backend.run(prompts, on_response)
                todo = retry
            self._admit_generated(fresh)
            bar.set_postfix(admitted=len(self.admitted), candidates=len(self.store.candidates))

    def _admit_generated(self, records: Sequence[dict]) -> None:
        candidates = [
            Candidate(
                id=record["id"],
                text=record["text"],
                source=GENERATED_SOURCE,
                register=record.get("register", ""),
                target_policy=record["policy"],
                intended_label=record["label"],
                intended_rule=record["behaviour"],
            )
            for record in records
        ]
        self._admit(candidates, GENERATED_SOURCE)

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
                "register": request.axes.get("format", ""),
                "text": item.text,
                "rationale": item.rationale,
            }
            for index, item in enumerate(parsed[: request.count])
        ]

    # ---------------------------------------------------------------- selection

    def _safe_group(self, item: Admitted, policy_id: str, topical: float) -> str:
        if any(decision.label == "unsafe" for other, decision in item.decisions.items() if other != policy_id):
            return "cross-policy"
        return "topical" if topical >= TOPICAL_SIMILARITY else "general"

    def _select(self, policy_id: str) -> list[Admitted]:
        """--num-per-label rows per label for one policy (both labels cut to the smaller count)."""
        config = self.config
        model = self.labeller.model(self.policies[policy_id])
        items = list(self.admitted.values())
        by_label = {label: [item for item in items if item.decisions[policy_id].label == label] for label in LABELS}
        unsafe = _diverse(by_label["unsafe"], policy_id, config.num_per_label, config.max_source_share)
        # The source cap spreads rows over sources while there are enough; short of them, the rest fill up.
        chosen = {id(item) for item in unsafe}
        unsafe += _diverse([item for item in by_label["unsafe"] if id(item) not in chosen], policy_id, config.num_per_label - len(unsafe), 1.0)
        safe_items = by_label["safe"]
        topical = nearest_mean_similarity(np.stack([item.vector for item in safe_items]), model.unsafe, 3) if safe_items else np.zeros(0)
        groups = {group: [] for group in SAFE_GROUPS}
        for item, value in zip(safe_items, topical):
            groups[self._safe_group(item, policy_id, value)].append(item)
        shares = {"cross-policy": config.cross_policy_share, "topical": config.topical_share}
        shares["general"] = 1 - sum(shares.values())
        safe: list[Admitted] = []
        for group in SAFE_GROUPS:
            safe += _diverse(groups[group], policy_id, round(config.num_per_label * shares[group]), config.max_source_share)
        taken = {id(item) for item in safe}
        spill = [item for group in SAFE_GROUPS for item in groups[group] if id(item) not in taken]
        safe += _diverse(spill, policy_id, config.num_per_label - len(safe), 1.0)
        size = min(len(unsafe), len(safe), config.num_per_label)
        if size < config.num_per_label:
            logger.warning(
                "policy '%s': %d rows per label of %d asked (unsafe available %d, safe %d); add corpora, raise --max-rounds, "
                "or use a stronger --generator with --generated-unsafe",
                policy_id, size, config.num_per_label, len(by_label["unsafe"]), len(by_label["safe"]),
            )
        return unsafe[:size] + safe[:size]

    def _background(self, policy_id: str, selected: list[Admitted]) -> list[Admitted]:
        """--background-per-policy benign corpus texts labelled safe under the policy, in a random order spread over corpora.

        Random, not the most confidently safe first: a guard's false positives come from the everyday texts of
        every register, which the selection by margin above leaves out. The guard of a scope policy is not given
        them: off its topic, everyday requests are what it flags.
        """
        count = self.config.background_per_policy
        if count == 0 or self.policies[policy_id].restricts_scope:
            return []
        taken = {item.candidate.id for item in selected}
        pool = [
            item for item in self.admitted.values()
            if item.candidate.prior == BENIGN and item.candidate.source.startswith(CORPUS_SOURCE_PREFIX)
            and item.candidate.id not in taken and item.decisions[policy_id].label == "safe"
        ]  # fmt: skip
        pool.sort(key=lambda item: stable_fraction(self.config.seed, "background", policy_id, item.candidate.id))
        return _diverse(pool, policy_id, count, self.config.max_source_share, by_margin=False)

    def _fragment_background(self, policy_id: str) -> list[Admitted]:
        """--document-fragments-per-policy passages of long documents labelled safe under the policy, at random.

        A guard reads a pasted document window by window; fitted on requests only, it flagged three times as many
        long benign documents as short requests. Scope policies get none, as with the background above.
        """
        if self.policies[policy_id].restricts_scope:
            return []
        pool = [item for item in self.fragments.values() if item.decisions[policy_id].label == "safe"]
        pool.sort(key=lambda item: stable_fraction(self.config.seed, "fragment-background", policy_id, item.candidate.id))
        return pool[: self.config.document_fragments_per_policy]

    # ---------------------------------------------------------------- assembly

    def _row(self, item: Admitted, policy_id: str) -> dict:
        decision = item.decisions[policy_id]
        candidate = item.candidate
        components = ", ".join(f"{name} {value:+.2f}" for name, value in decision.components.items())
        asked = f"asked for {candidate.intended_label} ({candidate.intended_rule}); " if candidate.target_policy == policy_id else ""
        return {
            "origin": candidate.id,
            "text": item.text,
            "label": decision.label,
            "policy": policy_id,
            "source": candidate.source,
            "rationale": f"{asked}labeller P(unsafe)={decision.score:.3f} ({components})",
            "rules": list(decision.rules),
        }


    def _cross_rows(self, selected: dict[str, list[Admitted]], background_only: dict[str, list[Admitted]]) -> list[dict]:
        """Multitask extras: per policy, texts selected for other policies, labelled under this one.

        background_only: per policy, the rows only the default config holds under it (background and passages):
        kept out of its cross rows, so that the two configs share the balanced rows alone."""
        per_policy = self.config.cross_policy_per_policy or max(1, self.config.num_per_label // 2)
        rows = []
        for policy_id in self.policies:
            own = {item.candidate.id for item in (*selected[policy_id], *background_only[policy_id])}
            others = {item.candidate.id: item for other, items in selected.items() if other != policy_id for item in items if item.candidate.id not in own}
            pool = [item for item in others.values() if item.decisions[policy_id].label is not None]
            pool.sort(key=lambda item: stable_fraction(self.config.seed, "cross", policy_id, item.candidate.id))
            # Texts unsafe elsewhere first: the negatives an instruction-reading guard must learn to let through.
            pool.sort(key=lambda item: not any(d.label == "unsafe" for other, d in item.decisions.items() if other != policy_id))
            rows += [self._row(item, policy_id) for item in pool[:per_policy]]
        return rows

    def _write(self, selected: dict[str, list[Admitted]], background: dict[str, list[Admitted]], fragments: dict[str, list[Admitted]]) -> None:
        config, output = self.config, self.output
        # The card marks a finished folder (make's target): a stale one must not vouch for half-written splits.
        (output / "README.md").unlink(missing_ok=True)
        # A text is in one split under every policy; stratified by the policy and label it was first selected for.
        # The fragments are split among themselves, so that adding them (or changing their count) moves no other row.
        split_of = assign_splits(_origins(selected, background), config.validation_fraction, config.test_fraction, config.seed)
        split_of |= assign_splits(_origins(fragments), config.validation_fraction, config.test_fraction, config.seed)
        for item in self.admitted.values():
            split_of.setdefault(item.candidate.id, "train")
        default_rows, augmentation = [], Counter()
        templates = BUILTIN_JAILBREAK_TEMPLATES
        for policy_id, items in selected.items():
            rng = random.Random(stable_seed(config.seed, "augment", policy_id))
            augmented, counts = augment_policy_rows(
                [self._row(item, policy_id) for item in items], templates, config.augment_jailbreak_fraction, config.augment_obfuscate_fraction, rng
            )
            default_rows += augmented
            augmentation.update(counts)
        cross_rows = self._cross_rows(selected, {policy_id: background[policy_id] + fragments[policy_id] for policy_id in self.policies})
        # The background rows would multiply the multitask set's (instruction, text) pairs, whose cost is per pair.
        background_rows = [self._row(item, policy_id) for chosen in (background, fragments) for policy_id, items in chosen.items() for item in items]
        configs = {"default": default_rows + background_rows, "multitask": default_rows + cross_rows}
        split_rows: dict[str, dict[str, int]] = {}
        counts: dict[str, dict] = {}
        for config_name, rows in configs.items():
            split_rows[config_name] = {}
            counts[config_name] = defaultdict(lambda: defaultdict(dict))
            for split in SPLITS:
                members = [row for row in rows if split_of[row["origin"]] == split]
                random.Random(stable_seed(config.seed, "order", config_name, split)).shuffle(members)
                path = split_file(output, split, config_name)
                path.unlink(missing_ok=True)  # an empty split is left out (datasets cannot load it), also after a rerun
                if members:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    rows_to_dataset(members).to_parquet(str(path))
                    split_rows[config_name][split] = len(members)
                for policy_id in self.policies:
                    for label in LABELS:
                        counts[config_name][policy_id][label][split] = sum(row["policy"] == policy_id and row["label"] == label for row in members)
        stats = self._stats(selected, default_rows + background_rows, augmentation, counts)
        stats["background_rows"] = {policy_id: len(items) for policy_id, items in background.items()}
        stats["document_fragment_rows"] = {policy_id: len(items) for policy_id, items in fragments.items()}
        (output / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False), encoding="utf-8")
        card = render_card(
            name=f"guardkit guardrail data: {', '.join(self.policies)}",
            policies=list(self.policies.values()),
            split_rows=split_rows,
            stats=stats,
            generation=asdict(config),
            examples=self._example_rows(default_rows, split_of),
            license=config.license,
        )
        card.save(output / "README.md")
        print(
            f"wrote {output}: {split_rows['default']} rows (default), {split_rows['multitask']} (multitask); "
            f"{stats['rows_per_label']['min']}-{stats['rows_per_label']['max']} rows per label and policy"
        )
        if not default_rows:
            raise GuardkitError(
                f"no row was selected for any policy; candidates are kept in {output / 'candidates.jsonl'}. Install the corpora "
                "(make setup), rerun with a larger --max-rounds, or use a stronger --generator"
            )

    def _example_rows(self, rows: list[dict], split_of: dict[str, str]) -> list[dict]:
        """One training row per policy, label and kind of source, for the card."""
        seen, examples = set(), []
        for row in rows:
            key = (row["policy"], row["label"], row["source"].split(":")[0])
            if key not in seen and split_of[row["origin"]] == "train":
                seen.add(key)
                examples.append(row)
        return sorted(examples, key=lambda row: (row["policy"], row["label"], row["source"]))

    def _stats(self, selected: dict[str, list[Admitted]], rows: list[dict], augmentation: Counter, counts: dict) -> dict:
        from guardkit.data.corpora import corpus_info

        elapsed = time.monotonic() - self.started
        per_label = [len(items) // 2 for items in selected.values()]
        by_source: dict[str, dict[str, dict[str, int]]] = {}
        for row in rows:
            source = row["source"] if not row["source"].startswith("augment:") else "augment"
            by_source.setdefault(row["policy"], {}).setdefault(row["label"], Counter())[source] += 1
        # Cross-policy matrix: rows of policy p (by label) whose text is unsafe under policy q.
        matrix = {
            policy_id: {
                label: {
                    other: sum(item.decisions[policy_id].label == label and item.decisions[other].label == "unsafe" for item in items)
                    for other in self.policies
                    if other != policy_id
                }
                for label in LABELS
            }
            for policy_id, items in selected.items()
        }
        abstained = {policy_id: sum(item.decisions[policy_id].label is None for item in self.admitted.values()) for policy_id in self.policies}
        statuses = Counter(self.store.finished.values())
        generation_minutes = self.generation_seconds / 60
        return {
            "rows_per_label": {"min": min(per_label, default=0), "max": max(per_label, default=0), "per_policy": dict(zip(selected, per_label))},
            "sources": {policy: {label: dict(sorted(values.items())) for label, values in labels.items()} for policy, labels in by_source.items()},
            "cross_policy_matrix": matrix,
            "candidates": {"admitted": len(self.admitted), "by_source": dict(sorted(self.sources.items()))},
            "labeller": {
                **self.labeller.describe(),
                "abstained": abstained,
                "policy_bench_estimate": self._label_accuracy_estimate(),
            },
            "reflection": dict(sorted(self.reflection.items())),
            "generated_unsafe_set_aside": self.generated_unsafe_set_aside,
            "filtering": dict(sorted(self.cleaner.dropped.items())),
            "decontamination": {
                "sets": self.reference_counts,
                "removed": dict(sorted(self.cleaner.contaminated.items())),
                "notes": self.reference_notes,
            },
            "generator": (self.backend.describe() if self.backend else {"backend": "none"}),
            "prompt_style": getattr(self, "style", None),
            "requests": {
                "done": statuses.get("done", 0),
                "failed": statuses.get("failed", 0),
                "unparseable": sum(self.store.unparseable_attempts.values()),
            },
            "generated_accepted": self.generated_accepted,
            "generation_minutes": round(generation_minutes, 2),
            "generated_accepted_per_minute": round(self.generated_accepted / generation_minutes, 1) if generation_minutes > 0 else None,
            "augmentation": dict(sorted(augmentation.items())),
            "corpora": corpus_info(self.corpora + self._fragment_sources()) if self.corpora else [],
            "counts": {name: {policy: {label: dict(splits) for label, splits in labels.items()} for policy, labels in value.items()} for name, value in counts.items()},
            "elapsed_seconds": round(elapsed, 1),
        }

    def _fragment_sources(self) -> list[str]:
        return sorted({item.candidate.source.removeprefix(FRAGMENT_SOURCE_PREFIX) for item in self.fragments.values()})

    def _label_accuracy_estimate(self) -> dict[str, dict[str, float]]:
        """The labeller, as configured here, on policy-bench's test half of each policy that has a file there."""
        estimate = {}
        for policy_id, policy in self.policies.items():
            path = Path(DEFAULT_POLICY_BENCH_DIR) / f"{policy_id}.jsonl"
            if not path.is_file():
                continue
            rows = [row for row in read_policy_bench(path) if row.half == "test" and row.policy == policy_id]
            if not rows or policy != self._shipped(policy_id):
                continue
            decisions = self.labeller.label(policy, [row.text for row in rows], self.encoder.encode([row.text for row in rows]))
            labels = np.array([row.label for row in rows])
            kept = np.array([decision.label is not None for decision in decisions])
            flagged = np.array([decision.label == "unsafe" for decision in decisions])
            accuracy = None
            if kept.any() and len(set(labels[kept])) == 2:
                accuracy = float((flagged[kept & (labels == 1)].mean() + (~flagged[kept & (labels == 0)]).mean()) / 2)
            estimate[policy_id] = {"rows": len(rows), "abstention": float(1 - kept.mean()), "balanced_accuracy": accuracy}
        return estimate

    def _shipped(self, policy_id: str) -> Policy | None:
        from guardkit.policies import shipped_policies

        return shipped_policies().get(policy_id)


def _origins(*chosen: dict[str, list[Admitted]]) -> list[tuple[str, str, str]]:
    """(candidate id, policy, label) of each chosen text, under the first policy it was chosen for."""
    origins: dict[str, tuple[str, str, str]] = {}
    for by_policy in chosen:
        for policy_id, items in by_policy.items():
            for item in items:
                origins.setdefault(item.candidate.id, (item.candidate.id, policy_id, item.decisions[policy_id].label))
    return list(origins.values())


def _diverse(items: Sequence[Admitted], policy_id: str, count: int, max_share: float, by_margin: bool = True) -> list[Admitted]:
    """Up to `count` items, no source above max_share of `count`: the most confidently labelled first, or in the given order."""
    if count <= 0 or not items:
        return []
    cap = max(1, math.ceil(count * max_share))
    taken: Counter[str] = Counter()
    chosen: list[Admitted] = []
    ordered = sorted(items, key=lambda item: (-item.decisions[policy_id].margin, item.candidate.id)) if by_margin else items
    for item in ordered:
        if taken[item.candidate.source] < cap:
            taken[item.candidate.source] += 1
            chosen.append(item)
            if len(chosen) == count:
                break
    return chosen


def generate(config: GenerateConfig) -> int:
    """Run `guardkit generate`; see GenerateConfig for the options."""
    return Generation(config).run()
