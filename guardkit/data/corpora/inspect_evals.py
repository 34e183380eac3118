"""Corpora in inspect-evals' data files (inspect-evals==0.26.0).

AgentDojo keeps its tasks in Python classes; they are read with `ast` (string constants and f-strings
over them), never imported.

Not registered, and why: `b3/data/threat_snapshots` hold the applications' contexts with an `{attack}`
slot, the attacks themselves are on the Hub; `cyberseceval_4`'s threat-intelligence reports are
downloaded on demand, only the questions ship; `coconot` ships a grading rubric; the docker, sandbox and
CTF folders (cybench, threecb, gdm_*, osworld, ...) hold task environments, not messages.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from guardkit.data.corpora.registry import CJK, DEFAULT_EVAL_FRACTION, Entry, corpus, document_source, split_of

EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
AGENTDOJO_SUITES = ("banking", "slack", "travel", "workspace", "workspace_plus")
TAU2_DOMAINS = ("airline", "retail", "telecom", "banking_knowledge")
# Concatenated documents stay below this many bytes, inside the 100 KiB the long-document set allows.
PART_LIMIT = 96 * 1024
PART_SEPARATOR = "\n\n---\n\n"


def _groups(texts: list[str], limit: int = PART_LIMIT) -> Iterator[list[int]]:
    """Consecutive runs of the texts' positions, each joined with PART_SEPARATOR below `limit` bytes."""
    group: list[int] = []
    size = 0
    for position, text in enumerate(texts):
        length = len(text.encode("utf-8")) + len(PART_SEPARATOR)
        if group and size + length > limit:
            yield group
            group, size = [], 0
        group.append(position)
        size += length
    if group:
        yield group


def _json(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _big_csv(path: Path) -> list[dict[str, str]]:
    # SWE-Lancer's issue threads exceed the csv module's default field limit.
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- AgentDojo's task classes, read as source ---------------------------------------------------------


class _Unresolved(Exception):
    pass


def _evaluate(node: ast.AST, names: dict[str, object]) -> object:
    """The value of a constant expression: literals, names bound earlier, f-strings, +, indexing."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _Unresolved(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
        return _evaluate(ast.Name(node.attr), names)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            inner = _evaluate(value.value, names)
            inner = repr(inner) if value.conversion == ord("r") else inner
            spec = _evaluate(value.format_spec, names) if value.format_spec else ""
            parts.append(format(inner, str(spec)))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _evaluate(node.left, names) + _evaluate(node.right, names)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(element, names) for element in node.elts]
    if isinstance(node, ast.Subscript):
        return _evaluate(node.value, names)[_evaluate(node.slice, names)]
    raise _Unresolved(type(node).__name__)


def _bind(statements: list[ast.stmt], names: dict[str, object]) -> dict[str, object]:
    for statement in statements:
        if isinstance(statement, ast.Assign):
            targets, value = [target.id for target in statement.targets if isinstance(target, ast.Name)], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None and isinstance(statement.target, ast.Name):
            targets, value = [statement.target.id], statement.value
        else:
            continue
        try:
            result = _evaluate(value, names)
        except (_Unresolved, TypeError, KeyError, IndexError, ValueError):
            continue
        names.update(dict.fromkeys(targets, result))
    return names


def class_strings(path: Path, attribute: str) -> Iterator[str]:
    """The string each class of a module binds to `attribute`, where it is a constant expression."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _bind(tree.body, {})
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            value = _bind(node.body, dict(module)).get(attribute)
            if isinstance(value, str):
                yield value


def _agentdojo_attack(root: Path) -> str:
    """AgentDojo's "important instructions" attack with its default user, `{goal}` left to fill."""
    tree = ast.parse((root / "agentdojo" / "attacks" / "attack.py").read_text(encoding="utf-8"))
    names = _bind(tree.body, {})
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "important_instructions_attack")
    user = _evaluate(function.args.defaults[0], names)
    return str(names["IMPORTANT_INSTRUCTIONS_PROMPT"]).replace("{user_name}", str(user)).replace("{{goal}}", "{goal}")


@corpus(
    "agentdojo-injections",
    package="inspect_evals",
    kind="injection",
    registers=("pasted-document",),
    licence="MIT (AgentDojo; see https://github.com/ethz-spylab/agentdojo)",
    homepage="https://github.com/ethz-spylab/agentdojo",
    description="AgentDojo's injection goals inside its 'important instructions' attack, as a tool output carries "
    "them, category = suite (banking, slack, travel, workspace)",
)
def agentdojo_injections(root: Path):
    attack = _agentdojo_attack(root)
    for suite in AGENTDOJO_SUITES:
        path = root / "agentdojo" / "task_suites" / suite / "injection_tasks.py"
        if path.is_file():
            yield from (Entry(attack.replace("{goal}", goal), suite) for goal in class_strings(path, "GOAL"))


@corpus(
    "agentdojo-user-tasks",
    package="inspect_evals",
    kind="benign",
    registers=("agent-task",),
    licence="MIT (AgentDojo; see https://github.com/ethz-spylab/agentdojo)",
    homepage="https://github.com/ethz-spylab/agentdojo",
    description="AgentDojo's user tasks for tool-using assistants, category = suite",
)
def agentdojo_user_tasks(root: Path):
    for suite in AGENTDOJO_SUITES:
        path = root / "agentdojo" / "task_suites" / suite / "user_tasks.py"
        if path.is_file():
            yield from (Entry(prompt, suite) for prompt in class_strings(path, "PROMPT"))


# --- agent threat benchmarks ----------------------------------------------------------------------


def _email(message: dict[str, str]) -> str:
    return f"From: {message['from']}\nSubject: {message['subject']}\n\n{message['body']}"


@corpus(
    "agent-threat-bench-injections",
    package="inspect_evals",
    kind="injection",
    registers=("pasted-document", "email"),
    description="the attacker-controlled emails, customer records and memory entries of AgentThreatBench "
    "(OWASP agentic risks), category = scenario",
)
def agent_threat_bench_injections(root: Path):
    folder = root / "agent_threat_bench" / "data"
    for record in _json(folder / "autonomy_hijack.json"):
        for index in record.get("attack_email_indices", []):  # 1-based, as the scorer reads them
            yield Entry(_email(record["inbox"][index - 1]), "autonomy_hijack", "email")
    for record in _json(folder / "data_exfil.json"):
        allowed = {recipient.lower() for recipient in record.get("authorized_recipients", [])}
        for customer in record["customer_db"]:
            # The injected record is the one that names a recipient the customer never authorised.
            addresses = {address.lower().rstrip(".") for address in EMAIL_ADDRESS.findall(customer["issue"])}
            if addresses - allowed:
                yield Entry(customer["issue"], "data_exfil")
    for record in _json(folder / "memory_poison.json"):
        marker = record.get("attack_marker", "").lower()
        if marker:
            yield from (Entry(value, "memory_poison") for value in record["memory_store"].values() if marker in value.lower())


@corpus(
    "agent-threat-bench-tasks",
    package="inspect_evals",
    kind="benign",
    registers=("agent-task",),
    description="the user requests of AgentThreatBench's scenarios (triage my inbox, resolve a ticket, answer from memory)",
)
def agent_threat_bench_tasks(root: Path):
    for path in sorted((root / "agent_threat_bench" / "data").glob("*.json")):
        yield from (Entry(record["input"], path.stem) for record in _json(path))


def _ipi_samples(root: Path) -> list[dict]:
    return _json(root / "ipi_coding_agent" / "dataset" / "samples.json")


@corpus(
    "ipi-coding-injections",
    package="inspect_evals",
    kind="injection",
    registers=("code",),
    description="indirect prompt injections planted in a coding agent's repository (issue text, code comments, "
    "README, config files), the carrying file whole, category = where it is planted",
)
def ipi_coding_injections(root: Path):
    for sample in _ipi_samples(root):
        if sample.get("is_benign"):
            continue
        if sample["injection_vector"] == "issue_text":
            yield Entry(sample["issue_text"], "issue_text")
            continue
        indicators = [part for part in sample.get("payload_indicator", "").split("|") if part]
        for content in sample["repo_files"].values():
            if any(indicator in content for indicator in indicators):
                yield Entry(content, sample["injection_vector"])


@corpus(
    "ipi-coding-benign",
    package="inspect_evals",
    kind="benign",
    registers=("code",),
    description="the coding tasks of the IPI coding-agent benchmark and the issue texts of its clean samples",
)
def ipi_coding_benign(root: Path):
    for sample in _ipi_samples(root):
        yield Entry(sample["task_description"], "task")
        if sample.get("is_benign"):
            yield Entry(sample["issue_text"], "issue")


# --- benign requests ------------------------------------------------------------------------------


def _writingbench_english(root: Path) -> list[dict]:
    rows = [json.loads(line) for line in (root / "writingbench" / "benchmark_all.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    # WritingBench mixes Chinese and English requests.
    return [row for row in rows if not CJK.search(row["query"])]


@corpus(
    "writingbench-en",
    package="inspect_evals",
    kind="benign",
    registers=("long-instruction",),
    licence="Apache-2.0 (WritingBench; see https://github.com/X-PLUG/WritingBench)",
    homepage="https://github.com/X-PLUG/WritingBench",
    description="English WritingBench writing requests, many with the source material pasted in, category = domain",
)
def writingbench_en(root: Path):
    yield from (Entry(row["query"], row.get("domain1")) for row in _writingbench_english(root))


def _tau2_tasks(root: Path, domain: str) -> list[dict]:
    """A domain's tasks (telecom ships them gzipped); none for a domain this copy of the package lacks."""
    folder = root / "tau2" / "data" / "domains" / domain
    if not folder.is_dir():
        return []
    path = folder / "tasks.json" if (folder / "tasks.json").is_file() else folder / "tasks.json.gz"
    return _json(path)


@corpus(
    "tau2-scenarios",
    package="inspect_evals",
    kind="benign",
    registers=("chat-request", "long-instruction"),
    licence="MIT (tau2-bench; see https://github.com/sierra-research/tau2-bench)",
    homepage="https://github.com/sierra-research/tau2-bench",
    description="what tau2-bench's simulated customers call about (reason and who they are; the banking domain's "
    "whole persona brief), category = domain",
)
def tau2_scenarios(root: Path):
    for domain in TAU2_DOMAINS:
        for task in _tau2_tasks(root, domain):
            instructions = task["user_scenario"]["instructions"]
            if isinstance(instructions, str):
                yield Entry(instructions, domain, "long-instruction")
            else:
                parts = (instructions.get("reason_for_call"), instructions.get("known_info"))
                yield Entry("\n".join(part.strip() for part in parts if part), domain, "chat-request")


@corpus(
    "freshqa",
    package="inspect_evals",
    kind="benign",
    registers=("question",),
    licence="see https://github.com/freshllms/freshqa",
    homepage="https://github.com/freshllms/freshqa",
    description="FreshQA questions (two releases, via AbstentionBench), false-premise ones included, category = fact type",
)
def freshqa(root: Path):
    for path in sorted((root / "abstention_bench" / "data" / "freshqa").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle)
            # A warning line and a blank line come before the header.
            header = next(row for row in rows if row and row[0] == "id")
            for row in rows:
                record = dict(zip(header, row))
                if record.get("question"):
                    yield Entry(record["question"], record.get("fact_type") or None)


@corpus(
    "persistbench-queries",
    package="inspect_evals",
    kind="benign",
    registers=("chat-request",),
    description="PersistBench's user queries to an assistant with memory (its stored memories left out), category = "
    "failure type the query probes",
)
def persistbench_queries(root: Path):
    for path in sorted((root / "persistbench" / "benchmark_samples").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                yield Entry(row["query"], row.get("failure_type"))


def _swe_lancer_issue(row: dict[str, str]) -> str:
    # The CSV stores the issues' newlines as the two characters "\n".
    return f"{row['title']}\n\n{row['description']}".replace("\\n", "\n")


def _swe_lancer_rows(root: Path) -> list[dict[str, str]]:
    return _big_csv(root / "swe_lancer" / "data" / "all_swelancer_tasks.csv")


@corpus(
    "swe-lancer-issues",
    package="inspect_evals",
    kind="benign",
    registers=("code",),
    licence="see https://github.com/openai/SWELancer-Benchmark",
    homepage="https://github.com/openai/SWELancer-Benchmark",
    description="Expensify GitHub issues posted as paid Upwork jobs (SWE-Lancer), category = task variant",
)
def swe_lancer_issues(root: Path):
    yield from (Entry(_swe_lancer_issue(row), row.get("variant")) for row in _swe_lancer_rows(root))


@corpus(
    "cyberseceval4-questions",
    package="inspect_evals",
    kind="benign",
    registers=("question",),
    licence="see https://github.com/meta-llama/PurpleLlama/tree/main/CybersecurityBenchmarks",
    homepage="https://github.com/meta-llama/PurpleLlama",
    description="CyberSecEval 4 security-analyst questions on malware sandbox reports and threat-intelligence "
    "reports: benign but on hacking and malware topics, category = malware-analysis/<topic> or threat-intel/<source>",
)
def cyberseceval4_questions(root: Path):
    folder = root / "cyberseceval_4"
    for question in _json(folder / "malware_analysis" / "questions.json"):
        yield Entry(question["question"], f"malware-analysis/{question.get('topic', '')}".rstrip("/"))
    for question in _json(folder / "threat_intel_reasoning" / "report_questions.json"):
        yield Entry(question["question_text"], f"threat-intel/{question.get('source', '')}".rstrip("/"))


TASK_BLOCK = re.compile(r"^--- Task \d+ ---$", re.MULTILINE)


def _email_task(block: str) -> str | None:
    fields = dict(line.split(":", 1) for line in block.strip().splitlines() if ":" in line)
    if "Subject" not in fields or "Detail" not in fields:
        return None
    return f"To: {fields.get('Recipient', '').strip()}\nSubject: {fields['Subject'].strip()}\n\n{fields['Detail'].strip()}"


@corpus(
    "gdm-stealth-emails",
    package="inspect_evals",
    kind="benign",
    registers=("email",),
    description="workplace emails of GDM's stealth evaluations (written for it, not collected): email-writing tasks, "
    "an inbox, customer-support tickets; category = which",
)
def gdm_stealth_emails(root: Path):
    folder = root / "gdm_stealth"
    for path in sorted((folder / "data" / "ai_secretary").glob("email_tasks_*.txt")):
        for block in TASK_BLOCK.split(path.read_text(encoding="utf-8")):
            if (text := _email_task(block)) is not None:
                yield Entry(text, "email-task")
    for row in _big_csv(folder / "solver" / "cover_your_tracks" / "email.csv"):
        yield Entry(f"From: {row['from']}\nTo: {row['to']}\nSubject: {row['subject']}\n\n{row['content']}", "inbox")
    for ticket in _json(folder / "solver" / "strategic_rule_breaking" / "tickets.json"):
        yield Entry(f"Subject: {ticket['subject']}\n\n{ticket['description']}", "support-ticket")


@corpus(
    "mind2web-sc-tasks",
    package="inspect_evals",
    kind="benign",
    registers=("agent-task",),
    licence="see https://github.com/OSU-NLP-Group/Mind2Web",
    homepage="https://github.com/OSU-NLP-Group/Mind2Web",
    description="Mind2Web web-agent tasks (as Mind2Web-SC uses them; its safety rules concern the user's profile, "
    "not the task text), category = domain",
)
def mind2web_sc_tasks(root: Path):
    for sample in _json(root / "mind2web_sc" / "data" / "seeact" / "sample_labeled_all.json"):
        yield Entry(sample["confirmed_task"], sample.get("domain"))


@corpus(
    "agentbench-os-tasks",
    package="inspect_evals",
    kind="benign",
    registers=("agent-task",),
    licence="Apache-2.0 (AgentBench; see https://github.com/THUDM/AgentBench)",
    homepage="https://github.com/THUDM/AgentBench",
    description="AgentBench's operating-system tasks for a shell agent",
)
def agentbench_os_tasks(root: Path):
    for path in sorted((root / "agent_bench" / "data").glob("agent_bench_os*.json")):
        yield from (Entry(task["description"], "os") for task in _json(path))


# --- long benign documents ------------------------------------------------------------------------


@document_source(
    "writingbench-long",
    package="inspect_evals",
    licence="Apache-2.0 (WritingBench; see https://github.com/X-PLUG/WritingBench)",
    homepage="https://github.com/X-PLUG/WritingBench",
    description="English WritingBench requests with their source material pasted in",
)
def writingbench_long(root: Path):
    yield from ((row["query"], False, row["query"]) for row in _writingbench_english(root))


@document_source(
    "swe-lancer-threads",
    package="inspect_evals",
    licence="see https://github.com/openai/SWELancer-Benchmark",
    homepage="https://github.com/openai/SWELancer-Benchmark",
    description="a SWE-Lancer issue followed by the contributors' proposals for it (a concatenation of one thread)",
)
def swe_lancer_threads(root: Path):
    for row in _swe_lancer_rows(root):
        if row.get("proposals"):
            issue = _swe_lancer_issue(row)
            yield f"{issue}\n\n{row['proposals']}".replace("\\n", "\n"), True, issue


@document_source(
    "swe-lancer-digests",
    package="inspect_evals",
    licence="see https://github.com/openai/SWELancer-Benchmark",
    homepage="https://github.com/openai/SWELancer-Benchmark",
    description="SWE-Lancer issue threads of one split one after another, cut below 96 KiB (a concatenation, for "
    "inputs far past a guard's window)",
)
def swe_lancer_digests(root: Path):
    sides: dict[str, list[tuple[str, str]]] = {}
    for text, _, issue in swe_lancer_threads(root):
        sides.setdefault(split_of(issue, DEFAULT_EVAL_FRACTION), []).append((issue, text))
    for threads in sides.values():
        for group in _groups([text for _, text in threads]):
            # Anchored on its first thread's issue, so the digest takes the side all its threads share.
            yield PART_SEPARATOR.join(threads[position][1] for position in group), True, threads[group[0]][0]


@document_source(
    "agentharm-documents",
    package="inspect_evals",
    licence="MIT with a safety-use clause (AgentHarm, see agentharm/LICENSE)",
    homepage="https://huggingface.co/datasets/ai-safety-institute/AgentHarm",
    description="the benign files of AgentHarm's tools: the 'Attention is all you need' text, a contract, stories",
)
def agentharm_documents(root: Path):
    for path in sorted((root / "agentharm" / "benchmark" / "benign_tools" / "content").glob("*.txt")):
        yield path.read_text(encoding="utf-8"), False, None


@document_source(
    "tau2-documents",
    package="inspect_evals",
    licence="MIT (tau2-bench; see https://github.com/sierra-research/tau2-bench)",
    homepage="https://github.com/sierra-research/tau2-bench",
    description="tau2-bench's customer-service policies, and its bank's knowledge-base articles on one product "
    "one after another (a concatenation, cut below 96 KiB)",
)
def tau2_documents(root: Path):
    domains = root / "tau2" / "data" / "domains"
    for path in sorted([*domains.glob("*/policy.txt"), *domains.glob("*/main_policy.txt")]):
        yield path.read_text(encoding="utf-8"), False, None
    articles = domains / "banking_knowledge" / "documents.json.gz"
    if not articles.is_file():
        return
    products: dict[str, list[str]] = {}
    for article in _json(articles):
        # Article ids are doc_<product>_<number>: the articles of one product read as one manual.
        products.setdefault(article["id"].rsplit("_", 1)[0], []).append(f"# {article['title']}\n\n{article['content']}")
    for product, texts in products.items():
        for number, group in enumerate(_groups(texts)):
            yield PART_SEPARATOR.join(texts[position] for position in group), True, f"{product}-{number}"


@document_source(
    "gdm-stealth-inbox",
    package="inspect_evals",
    description="the whole inbox of GDM's cover-your-tracks task, one email after another (a concatenation)",
)
def gdm_stealth_inbox(root: Path):
    rows = _big_csv(root / "gdm_stealth" / "solver" / "cover_your_tracks" / "email.csv")
    messages = [f"From: {row['from']}\nTo: {row['to']}\nDate: {row['time']}\nSubject: {row['subject']}\n\n{row['content']}" for row in rows]
    if messages:
        yield PART_SEPARATOR.join(messages), True, None
