"""Publishing guardkit folders to the Hugging Face Hub (`guardkit publish`) and fetching them back (`guardkit pull`).

Three kinds of folder are published, each recognised by what it contains:
  dataset  data/*.parquet with a README.md card (`configs`, `dataset_info.features`), written by `guardkit generate`
  model    guardkit.json next to a transformers config.json, written by `guardkit train` / `guardkit merge`
  space    a README.md whose front matter sets `sdk`, plus its app file (app.py)
and a run (the folder `make reproduce` writes: one dataset and the guards trained on it) as all of them in
order: the dataset, every guard naming the dataset's new Hub id, then the Space serving the guards.

The stage that writes a folder also renders its card (templates in `dataset_cards/` and `model_cards/`); this
module checks the card and the folder locally, writes in what is known only at publish time on a copy
(`guardkit.staging`), then uploads it as one commit. The token comes from `HF_TOKEN` or the huggingface_hub
login and is handed to huggingface_hub only: it is never printed, logged or written.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from huggingface_hub import DatasetCard, HfApi, ModelCard, RepoCard, SpaceCard, constants, get_token, is_offline_mode, metadata_load
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, HFValidationError, filter_repo_objects, validate_repo_id

from guardkit import __version__
from guardkit.errors import GuardkitError
from guardkit.guard import DatasetRef, guard_folders, read_manifest
from guardkit.resources import shipped_path
from guardkit.staging import Stage, StagingError, is_local_path, space_requirement_problems, stage_guard, stage_space

# An artifact's kind is also its Hub repository type.
HUB_URL_PREFIXES = {"dataset": "datasets/", "model": "", "space": "spaces/"}
# The config each stage saves next to its output: the commit message names it so a Hub commit says how it was made.
SOURCE_CONFIGS = {"dataset": ("generation.yaml",), "model": ("training.yaml", "merge.yaml"), "space": ()}
# Local leftovers that are not part of an artifact (search.db: the merge search's resumable Optuna study);
# huggingface_hub adds .git and its own download metadata.
IGNORE_PATTERNS = ["*.pyc", "__pycache__/*", "*/__pycache__/*", ".ipynb_checkpoints/*", "*/.ipynb_checkpoints/*", "search.db"]
# Text files where a token could have been pasted. Any token-shaped string in config-like files is refused; data
# files are only checked for the active token, since synthetic rows may hold made-up keys on purpose (PII policies).
CONFIG_SUFFIXES = {".md", ".yaml", ".yml", ".json", ".txt", ".py", ".toml", ".cfg", ".ini", ".env", ".html"}
DATA_SUFFIXES = {".jsonl", ".csv", ".tsv"}
HF_TOKEN_PATTERN = re.compile(rb"hf_[A-Za-z0-9]{30,}")
MARKDOWN_LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)")
# huggingface_hub 1.x sends its requests with httpx and 2.x with httpx2: a network failure is either's TransportError.
TRANSPORT_ERRORS = tuple(
    importlib.import_module(name).TransportError for name in ("httpx", "httpx2") if importlib.util.find_spec(name)
)
LOGIN_HINT = "set HF_TOKEN to a write token (https://huggingface.co/settings/tokens) or run `hf auth login`"


class HubAccessError(GuardkitError):
    """No usable token, offline mode, or the Hub refused or could not be reached."""


class ArtifactError(GuardkitError):
    """A folder that is not a publishable guardkit dataset, model or Space, with every problem found listed."""


@dataclass
class PublishConfig:
    folder: str = field(
        metadata={
            "positional": True,
            "help": "folder to publish: a dataset (guardkit generate), a guard (train/merge), a Space, or a whole run "
            "(the folder of `make reproduce`: its dataset, guards and the Space, with --namespace)",
        }
    )
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repository to publish a dataset, guard or Space to, ORG/NAME (created if it does not exist)"}
    )
    namespace: str | None = field(
        default=None,
        metadata={"help": "for a run: the user or organisation its repositories are created under (PREFIX-dataset, PREFIX-uniguard, ...)"},
    )
    prefix: str | None = field(default=None, metadata={"help": "for a run: the start of every repository name; default: the run folder's name"})
    model: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "for a Space: Hub ids of the guards it serves (repeat --model; the first opens the page), written "
            "into its README's `models`",
        },
    )
    dataset_id: list[str] = field(
        default_factory=list,
        metadata={
            "action": "extend",
            "help": "for a guard trained from a local dataset folder: the Hub id that dataset was published to "
            "(written into its card and guardkit.json); for a Space: its `datasets` (default: those the --model cards name)",
        },
    )
    guardkit_requirement: str | None = field(
        default=None,
        metadata={
            "help": "for a Space: the requirements.txt line that installs guardkit, e.g. 'guardkit @ "
            "git+https://github.com/ORG/guardkit@TAG'; default: a wheel built from this checkout, uploaded with the Space"
        },
    )
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    revision: str | None = field(
        default=None, metadata={"help": "branch to commit to, created from main if it does not exist; none: main"}
    )
    create_pr: bool = field(default=False, metadata={"help": "open a pull request against main instead of committing to it"})
    dry_run: bool = field(
        default=False,
        metadata={"help": "validate and print the repo, type, files with sizes and the card; upload nothing (no token needed)"},
    )


@dataclass
class PullConfig:
    repo: str = field(metadata={"positional": True, "help": "Hub id of a guardkit model or dataset, ORG/NAME"})
    repo_type: Literal["auto", "model", "dataset"] = field(
        default="auto", metadata={"help": "what REPO is; auto tries a model first, then a dataset"}
    )
    revision: str | None = field(default=None, metadata={"help": "branch, tag or commit to fetch; none: main"})
    local_dir: str | None = field(
        default=None, metadata={"help": "copy the files into this folder instead of the standard Hub cache"}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Hub cache folder to use instead of the standard one"})


@dataclass(frozen=True)
class Artifact:
    """A folder that passed validation, with what its upload needs."""

    folder: Path
    kind: str
    card_text: str
    files: list[tuple[str, int]]  # (path in repo, size in bytes), exactly what upload_folder sends
    source_config: str | None
    space_sdk: str | None = None

    def commit_message(self) -> str:
        return f"guardkit {__version__}: publish {self.kind} (source config: {self.source_config or 'none'})"

    def commit_description(self) -> str:
        if self.source_config is None:
            return f"Published with guardkit {__version__}."
        text = (self.folder / self.source_config).read_text(encoding="utf-8").rstrip()
        return f"Published with guardkit {__version__} from `{self.source_config}`:\n\n```yaml\n{text}\n```"


def require_hub_access() -> str:
    """The token to publish with; raises one clear error when there is none or the Hub is switched off.

    Stages with `--push-to-hub` call this before their own work so a missing token does not surface hours later.
    """
    if is_offline_mode():
        raise HubAccessError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it (or TRANSFORMERS_OFFLINE) to publish, "
            "or use --dry-run to check the folder offline"
        )
    token = get_token()
    if not token:
        raise HubAccessError(f"no Hugging Face token found: {LOGIN_HINT}")
    return token


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise GuardkitError(f"'{repo_id}' is not a Hub repository id; use ORG/NAME ({error})") from None


def repo_url(repo_id: str, kind: str) -> str:
    return f"{constants.ENDPOINT}/{HUB_URL_PREFIXES[kind]}{repo_id}"


# ---------------------------------------------------------------- reading and checking a folder


def _front_matter(readme: Path) -> dict:
    if not readme.is_file():
        return {}
    try:
        return metadata_load(readme) or {}
    except yaml.YAMLError as error:
        raise ArtifactError(f"{readme}: the YAML front matter cannot be parsed ({error})") from None


def detect_kind(folder: Path) -> str:
    """'dataset', 'model' or 'space', from the files the folder holds."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a folder")
    front = _front_matter(folder / "README.md")
    found = [
        kind
        for kind, present in (
            ("dataset", any((folder / "data").glob("*.parquet"))),
            ("model", (folder / "guardkit.json").is_file()),
            ("space", "sdk" in front),
        )
        if present
    ]
    if not found:
        raise ArtifactError(
            f"cannot tell what {folder} is: a dataset folder has data/*.parquet (guardkit generate), a model folder "
            "has guardkit.json (guardkit train / merge), a Space folder has a README.md whose front matter sets `sdk`"
        )
    if len(found) > 1:
        raise ArtifactError(f"{folder} looks like several kinds at once ({', '.join(found)}); publish each from its own folder")
    return found[0]


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _hub_id_problem(value) -> str | None:
    """Why `value` is not a Hub repository id (a local path most likely), or None when it is one."""
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if value.startswith(("/", "~", ".", "file:")) or "\\" in value or re.match(r"^[A-Za-z]:", value):
        return f"'{value}' is a local path"
    try:
        validate_repo_id(value)
    except HFValidationError:
        return f"'{value}' is not a Hub id (ORG/NAME)"
    return None


def _local_path_problems(card_text: str, folder: Path) -> list[str]:
    """Links and mentions in the card body that point at this machine rather than at the Hub."""
    problems = []
    for target in MARKDOWN_LINK_TARGET.findall(card_text):
        if target.startswith(("file:", "~")) or (target.startswith("/") and len(target) > 1 and Path(target).exists()):
            problems.append(f"README.md links to the local path '{target}'; link to the Hub or to a file inside the repo")
    for local_root in {str(Path.home()), str(folder.resolve().parent)}:
        if local_root.rstrip("/") and f"{local_root.rstrip('/')}/" in card_text:
            problems.append(f"README.md mentions paths under '{local_root}' on this machine; name Hub ids instead")
    return problems


def _hub_link_problems(field_name: str, values, what_to_do: str) -> list[str]:
    return [
        f"`{field_name}`: {problem}; {what_to_do}"
        for problem in (_hub_id_problem(value) for value in _as_list(values))
        if problem
    ]


def _source_config(folder: Path, kind: str) -> tuple[str | None, list[str]]:
    names = SOURCE_CONFIGS[kind]
    present = [name for name in names if (folder / name).is_file()]
    if names and not present:
        return None, [f"{' or '.join(names)} is missing: the config that produced the folder is published with it"]
    return (present[0] if present else None), []


def _card_text(folder: Path) -> tuple[str | None, list[str]]:
    readme = folder / "README.md"
    if not readme.is_file():
        return None, ["README.md (the card) is missing: the stage that wrote the folder renders it"]
    text = readme.read_text(encoding="utf-8")
    if not text.lstrip().startswith("---"):
        return None, ["README.md has no YAML front matter (the `---` block with the card metadata)"]
    return text, []


def _model_problems(folder: Path, card_text: str) -> list[str]:
    problems = []
    if not (folder / "config.json").is_file():
        problems.append("config.json is missing: a guard folder is a transformers folder written by guardkit.guard.save_guard")
    if not any(folder.glob("*.safetensors")):
        problems.append("no *.safetensors weights in the folder")
    try:
        guard_info = json.loads((folder / "guardkit.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        problems.append(f"guardkit.json is not valid JSON ({error})")
    else:
        if not isinstance(guard_info, dict) or "kind" not in guard_info:
            problems.append("guardkit.json has no `kind`")
    try:
        data = ModelCard(card_text).data
    except ValueError as error:
        return [*problems, f"README.md front matter: {error}"]
    for name, meaning in (
        ("license", "the license the weights are released under"),
        ("pipeline_tag", "text-classification for encoder guards, text-generation for judges"),
        ("base_model", "the Hub id of the model it was fine-tuned from"),
        ("datasets", "the Hub ids of its training data; a guard trained from a local folder has none: publish the "
         "dataset (guardkit publish DATASET_DIR --repo-id ORG/NAME), then this guard with --dataset-id ORG/NAME"),
    ):
        if not getattr(data, name):
            problems.append(f"README.md front matter has no `{name}` ({meaning})")
    if not data.eval_results:
        problems.append("README.md front matter has no `model-index` (render the card with ModelCardData(eval_results=...))")
    problems += _hub_link_problems(
        "base_model", data.base_model, "name the base model's Hub id (guardkit.assets.hub_id_of gives it for shipped models)"
    )
    problems += _hub_link_problems(
        "datasets",
        data.datasets,
        "publish the dataset first (guardkit publish DATASET_DIR --repo-id ORG/NAME) and name its Hub id",
    )
    return problems


def _dataset_problems(folder: Path, card_text: str) -> list[str]:
    import pyarrow.parquet as pq
    from datasets import Features, load_dataset_builder
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    data = DatasetCard(card_text).data
    problems = []
    if not data.task_categories:
        problems.append("README.md front matter has no `task_categories`")
    problems += _hub_link_problems(
        "source_datasets",
        # "original" and "extended|..." are the card vocabulary for provenance, not links.
        [value for value in _as_list(data.source_datasets) if value != "original" and "|" not in str(value)],
        "name source datasets by Hub id",
    )
    configs = MetadataConfigs.from_dataset_card_data(data)
    if not configs:
        return [*problems, "README.md front matter has no `configs` (config names and their data_files)"]
    infos = DatasetInfosDict.from_dataset_card_data(data)
    covered: set[Path] = set()
    for config_name in configs:
        info = infos.get(config_name)
        if info is None or info.features is None:
            problems.append(f"README.md front matter has no `dataset_info.features` for config '{config_name}'")
            continue
        try:
            builder = load_dataset_builder(str(folder), config_name)
        except Exception as error:  # datasets raises several types for unresolvable data_files; all mean the same here
            problems.append(f"config '{config_name}': its data_files do not resolve in the folder ({error})")
            continue
        for split, files in (builder.config.data_files or {}).items():
            for file in files:
                path = Path(file).resolve()
                covered.add(path)
                if path.suffix == ".parquet" and Features.from_arrow_schema(pq.read_schema(path)) != info.features:
                    problems.append(
                        f"config '{config_name}' split '{split}': {path.relative_to(folder.resolve())} does not have "
                        "the features the card declares"
                    )
    stray = sorted(
        path.relative_to(folder.resolve()).as_posix()
        for path in folder.resolve().rglob("*.parquet")
        if path not in covered
    )
    if stray:
        problems.append(f"parquet files that no config in README.md lists: {', '.join(stray)}")
    return problems


def _space_problems(folder: Path, card_text: str) -> tuple[list[str], str | None]:
    data = SpaceCard(card_text).data
    problems = [f"README.md front matter has no `{name}`" for name in ("title", "sdk", "app_file") if not getattr(data, name)]
    if data.sdk and data.sdk not in constants.SPACES_SDK_TYPES:
        problems.append(f"`sdk: {data.sdk}` is not a Space SDK; use one of {', '.join(constants.SPACES_SDK_TYPES)}")
    if data.app_file and not (folder / data.app_file).is_file():
        problems.append(f"the app file '{data.app_file}' named in README.md is not in the folder")
    if not data.models:
        problems.append("README.md front matter has no `models`: pass --model ORG/GUARD for each guard the Space serves")
    problems += _hub_link_problems("models", data.models, "name each guard by its Hub id (publish it first)")
    problems += _hub_link_problems("datasets", data.datasets, "name each dataset by its Hub id (publish it first)")
    problems += space_requirement_problems(folder)
    return problems, data.sdk


def _upload_files(folder: Path) -> list[tuple[str, int]]:
    """The files upload_folder sends, filtered the way it filters them."""
    relative = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    kept = filter_repo_objects(relative, ignore_patterns=IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS)
    return [(name, (folder / name).stat().st_size) for name in kept]


def _token_leak_problems(folder: Path, files: list[tuple[str, int]], token: str | None) -> list[str]:
    """Files that would publish a Hugging Face token; the message names the file, never the token."""
    problems = []
    for name, _ in files:
        suffix = Path(name).suffix.lower()
        if suffix not in CONFIG_SUFFIXES | DATA_SUFFIXES:
            continue
        content = (folder / name).read_bytes()
        if (token and token.encode() in content) or (suffix in CONFIG_SUFFIXES and HF_TOKEN_PATTERN.search(content)):
            problems.append(
                f"{name} contains a Hugging Face token; remove it (and revoke it at https://huggingface.co/settings/tokens)"
            )
    return problems


def inspect_folder(folder: str | Path, token: str | None = None, source: Path | None = None) -> Artifact:
    """Recognise and validate a folder; raises ArtifactError listing every problem, or returns what to upload.

    source: the folder a publish-ready copy was made from (the card must not name paths around it either).
    """
    folder = Path(folder)
    kind = detect_kind(folder)
    files = _upload_files(folder)
    card_text, problems = _card_text(folder)
    source_config, source_problems = _source_config(folder, kind)
    problems += source_problems
    space_sdk = None
    if card_text is not None:
        if kind == "model":
            problems += _model_problems(folder, card_text)
        elif kind == "dataset":
            problems += _dataset_problems(folder, card_text)
        else:
            space_problems, space_sdk = _space_problems(folder, card_text)
            problems += space_problems
        problems += _local_path_problems(card_text, source or folder)
    problems += _token_leak_problems(folder, files, token)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ArtifactError(f"{folder} ({kind}) cannot be published:\n{listed}")
    return Artifact(folder, kind, card_text or "", files, source_config, space_sdk)


# ---------------------------------------------------------------- uploading


def _human_size(size: float) -> str:
    unit = "B"
    for larger in ("kB", "MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, larger
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def _hub_error(error: Exception, repo_id: str) -> HubAccessError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 401:
        return HubAccessError(f"the Hub rejected the token (HTTP 401): {LOGIN_HINT}")
    if status == 403:
        return HubAccessError(f"the token may not write to {repo_id} (HTTP 403): use a write token for that namespace")
    if isinstance(error, HfHubHTTPError):
        return HubAccessError(f"the Hub refused the request for {repo_id}: {error}")
    return HubAccessError(f"cannot reach the Hugging Face Hub ({type(error).__name__}); check the network and retry")


def _upload(artifact: Artifact, repo_id: str, token: str, api, private: bool, revision: str | None, create_pr: bool):
    """Create the repo if needed and upload the folder as one commit; returns huggingface_hub's CommitInfo."""
    repo_type = artifact.kind
    try:
        extra = {"space_sdk": artifact.space_sdk} if artifact.kind == "space" else {}
        api.create_repo(repo_id, token=token, repo_type=repo_type, private=private, exist_ok=True, **extra)
        if private and not api.repo_info(repo_id, repo_type=repo_type, token=token).private:
            raise HubAccessError(
                f"{repo_id} already exists and is public, so --private cannot be honoured; make it private on the Hub "
                "first or drop --private"
            )
        if revision not in (None, constants.DEFAULT_REVISION) and not create_pr:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, token=token, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(artifact.folder),
            repo_type=repo_type,
            revision=revision,
            create_pr=create_pr,
            commit_message=artifact.commit_message(),
            commit_description=artifact.commit_description(),
            ignore_patterns=list(IGNORE_PATTERNS),
            # The repo mirrors the folder: files left from an earlier publish that the folder no longer has go.
            delete_patterns="*",
            token=token,
        )
    except (HfHubHTTPError, OfflineModeIsEnabled, *TRANSPORT_ERRORS) as error:
        raise _hub_error(error, repo_id) from None
    return commit


def _check_target(repo_id: str, revision: str | None, create_pr: bool) -> None:
    _check_repo_id(repo_id)
    if create_pr and revision not in (None, constants.DEFAULT_REVISION):
        raise GuardkitError("--create-pr opens a pull request against main; drop --revision or --create-pr")


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    api: HfApi | None = None,
) -> str:
    """Validate a guardkit folder and upload it to `repo_id` as one commit; returns the commit (or PR) URL.

    The code behind `guardkit publish` and every stage's `--push-to-hub`.
    """
    token = require_hub_access()
    _check_target(repo_id, revision, create_pr)
    commit = _push(inspect_folder(folder, token), repo_id, token, api or HfApi(), private, revision, create_pr)
    return commit.pr_url or commit.commit_url


def _push(artifact: Artifact, repo_id: str, token: str, api, private: bool, revision: str | None, create_pr: bool):
    print(f"uploading {artifact.kind} to {repo_url(repo_id, artifact.kind)} ({len(artifact.files)} files)")
    commit = _upload(artifact, repo_id, token, api, private, revision, create_pr)
    print(f"published: {commit.pr_url or commit.commit_url}")
    return commit


def _print_dry_run(artifact: Artifact, repo_id: str, config: PublishConfig, has_token: bool) -> None:
    total = sum(size for _, size in artifact.files)
    target = "a pull request against main" if config.create_pr else f"branch {config.revision or 'main'}"
    print("dry run: nothing is uploaded")
    visibility = "private" if config.private else "public"
    print(f"repo:    {repo_id} ({artifact.kind}, {visibility}) {repo_url(repo_id, artifact.kind)}")
    print(f"commit:  {artifact.commit_message()}  -> {target}")
    print(f"token:   {'found' if has_token else 'missing: ' + LOGIN_HINT}")
    print(f"files:   {len(artifact.files)}, {_human_size(total)} (files on the Hub that are not listed here are deleted)")
    for name, size in artifact.files:
        print(f"  {_human_size(size):>10}  {name}")
    print("card (README.md):")
    print(artifact.card_text, end="" if artifact.card_text.endswith("\n") else "\n")


def _refuse_options(config: PublishConfig, what: str, names: tuple[str, ...]) -> None:
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(config, name)]
    if given:
        raise GuardkitError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to {what}")


def _published_dataset(dataset_id: str, api, token: str | None, dry_run: bool) -> DatasetRef:
    """The Hub dataset a guard names instead of its local folder, at its current revision (none in a dry run)."""
    _check_repo_id(dataset_id)
    if dry_run:
        return DatasetRef(id=dataset_id)
    try:
        return DatasetRef(id=dataset_id, revision=api.dataset_info(dataset_id, token=token).sha)
    except RepositoryNotFoundError:
        raise HubAccessError(f"--dataset-id {dataset_id}: no such dataset on the Hub; publish it first (guardkit publish DATASET_DIR --repo-id {dataset_id})") from None
    except (HfHubHTTPError, *TRANSPORT_ERRORS) as error:
        raise _hub_error(error, dataset_id) from None


def _datasets_of(models: list[str]) -> list[str]:
    """The training datasets the guards' cards name, read from the Hub (or its cache)."""
    from huggingface_hub.errors import EntryNotFoundError

    found: list[str] = []
    for model in models:
        try:
            found += ModelCard.load(model).data.datasets or []
        except (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, *TRANSPORT_ERRORS) as error:
            raise StagingError(
                f"cannot read the card of {model} to name the datasets it was trained on ({type(error).__name__}); "
                "publish the guard first, or name the datasets with --dataset-id"
            ) from None
    return list(dict.fromkeys(found))


def _stage_folder(stage: Stage, folder: Path, config: PublishConfig, api, token: str | None) -> Path:
    """The folder as it will be uploaded: a guard or a Space with the publish-time ids written in."""
    kind = detect_kind(folder)
    if kind == "dataset":
        _refuse_options(config, "a dataset", ("model", "dataset_id", "guardkit_requirement"))
        return folder
    if kind == "model":
        _refuse_options(config, "a guard", ("model", "guardkit_requirement"))
        if len(config.dataset_id) > 1:
            raise GuardkitError("--dataset-id: a guard is trained on one dataset; give one Hub id")
        dataset = _published_dataset(config.dataset_id[0], api, token, config.dry_run) if config.dataset_id else None
        return stage_guard(stage, folder, config.repo_id, dataset)
    for model in config.model:
        _check_repo_id(model)
    datasets = config.dataset_id or _datasets_of(list(config.model))
    return stage_space(
        stage, folder, config.repo_id, config.model, datasets, config.guardkit_requirement, config.revision, config.private
    )


def publish(config: PublishConfig, api: HfApi | None = None) -> int:
    """`guardkit publish DIR --repo-id ORG/NAME`, or `guardkit publish RUN_DIR --namespace ORG` for a whole run."""
    folder = Path(config.folder)
    if is_run_folder(folder):
        return publish_run(config, api)
    _refuse_options(config, f"{folder} (not a run folder: it holds no guards below it)", ("namespace", "prefix"))
    if not config.repo_id:
        raise GuardkitError("--repo-id: name the Hub repository to publish to, ORG/NAME (a run folder takes --namespace ORG)")
    _check_target(config.repo_id, config.revision, config.create_pr)
    token = get_token() if config.dry_run else require_hub_access()
    api = api or HfApi()
    with Stage() as stage:
        artifact = inspect_folder(_stage_folder(stage, folder, config, api, token), token, source=folder)
        if config.dry_run:
            _print_dry_run(artifact, config.repo_id, config, has_token=bool(token))
        else:
            _push(artifact, config.repo_id, token, api, config.private, config.revision, config.create_pr)
    return 0


# ---------------------------------------------------------------- a whole run


def is_run_folder(folder: Path) -> bool:
    """A folder that is no artifact itself but holds guard folders below it (what `make reproduce` writes)."""
    if not folder.is_dir() or (folder / "guardkit.json").is_file() or any((folder / "data").glob("*.parquet")):
        return False
    if "sdk" in _front_matter(folder / "README.md"):
        return False
    return bool(guard_folders(folder))


@dataclass(frozen=True)
class RunPlan:
    """What a run publishes and where: the dataset, the guards (sources before the UniGuards merged from
    them) and the Space, each with its repo id."""

    root: Path
    dataset: Path
    guards: list[Path]
    repo_ids: dict[Path, str]
    space: Path
    space_repo_id: str
    space_models: list[str]

    @classmethod
    def read(cls, folder: Path, namespace: str, prefix: str) -> "RunPlan":
        from guardkit.demo import reproduce_guards

        root = folder.resolve()
        datasets = sorted({path.parent.parent for path in root.rglob("data/*.parquet")})
        if len(datasets) != 1:
            found = ", ".join(str(path.relative_to(root)) for path in datasets) or "none"
            raise ArtifactError(
                f"{folder}: a run holds one dataset folder (data/*.parquet) and the guards trained on it; found {found}. "
                "Publish folders one by one with --repo-id"
            )
        guards = guard_folders(root)
        # Sources first: a UniGuard's card names them by their Hub ids.
        guards.sort(key=lambda path: read_manifest(path).kind == "uniguard")
        repo_ids = {}
        for path in [datasets[0], *guards]:
            name = f"{prefix}-{path.relative_to(root).as_posix().replace('/', '-')}"
            repo_ids[path] = f"{namespace}/{name}"
            _check_repo_id(repo_ids[path])
        served = [repo_ids[Path(path).resolve()] for _, path in reproduce_guards(root)]
        return cls(root, datasets[0], guards, repo_ids, shipped_path("spaces/guardkit"), f"{namespace}/{prefix}-space", served)

    def source_ids(self, uniguard: Path) -> dict[str, str]:
        """Each source of a UniGuard as its merge.yaml names it (a folder) -> its Hub id."""
        from guardkit.merge.recipe import MergeRecipe

        ids = {}
        for source in MergeRecipe.load(uniguard / "merge.yaml").sources:
            given = Path(source.model)
            match = [
                path for path in self.guards
                if given.resolve() == path or given.as_posix().endswith("/" + path.relative_to(self.root).as_posix())
            ]  # fmt: skip
            if match:
                ids[source.model] = self.repo_ids[match[0]]
            elif is_local_path(source.model) or given.exists():
                raise ArtifactError(f"{uniguard}: merged from {source.model}, which is not a guard of this run; publish it first")
            else:
                ids[source.model] = source.model  # already a Hub id
        return ids

    def staged(self, stage: Stage, dataset: DatasetRef, config: PublishConfig) -> list[tuple[str, Path, Path]]:
        """(repo id, folder to upload, the run's folder it was made from) in publishing order."""
        artifacts = [(self.repo_ids[self.dataset], self.dataset, self.dataset)]
        for guard in self.guards:
            manifest = read_manifest(guard)
            local = [ref for ref in manifest.datasets if is_local_path(ref.id)]
            strangers = [ref.id for ref in local if Path(ref.id).resolve() != self.dataset]
            if strangers:
                raise ArtifactError(f"{guard} was trained on {strangers[0]}, not on this run's dataset {self.dataset}")
            sources = self.source_ids(guard) if manifest.kind == "uniguard" else {}
            repo_id = self.repo_ids[guard]
            artifacts.append((repo_id, stage_guard(stage, guard, repo_id, dataset if local else None, sources), guard))
        space = stage_space(
            stage, self.space, self.space_repo_id, self.space_models, [dataset.id], config.guardkit_requirement,
            config.revision, config.private,
        )  # fmt: skip
        return [*artifacts, (self.space_repo_id, space, self.space)]


def _front_matter_line(artifact: Artifact) -> str:
    data = RepoCard(artifact.card_text).data.to_dict()
    fields = ("datasets", "base_model") if artifact.kind == "model" else ("models", "datasets") if artifact.kind == "space" else ()
    return "; ".join(f"{name}: {', '.join(map(str, _as_list(data.get(name)))) or '-'}" for name in fields)


def publish_run(config: PublishConfig, api: HfApi | None = None) -> int:
    """`guardkit publish RUN_DIR --namespace ORG`: the dataset, then every guard naming its Hub id, then the Space."""
    folder = Path(config.folder)
    if config.repo_id:
        raise GuardkitError(f"{folder} is a run (a dataset and the guards trained on it): name where it goes with --namespace ORG, not --repo-id")
    if not config.namespace:
        raise GuardkitError(f"{folder} is a run: pass --namespace ORG (the user or organisation its repositories are created under)")
    if config.create_pr:
        raise GuardkitError("--create-pr: a run's guards name the dataset's new revision on main or --revision; drop --create-pr")
    _refuse_options(config, "a run (it names its own guards and dataset)", ("model", "dataset_id"))
    plan = RunPlan.read(folder, config.namespace, config.prefix or folder.resolve().name)
    token = get_token() if config.dry_run else require_hub_access()
    api = api or HfApi()
    dataset_id = plan.repo_ids[plan.dataset]
    # Everything is staged and checked before the first upload, so a problem in the last guard uploads nothing.
    with Stage() as stage:
        staged = plan.staged(stage, DatasetRef(dataset_id), config)
        checked = [(repo_id, inspect_folder(path, token, source=source)) for repo_id, path, source in staged]
        if config.dry_run:
            print(f"dry run: nothing is uploaded; {len(checked)} repositories, {'private' if config.private else 'public'}")
            print(f"token:   {'found' if token else 'missing: ' + LOGIN_HINT}")
            for number, (repo_id, artifact) in enumerate(checked, 1):
                size = _human_size(sum(size for _, size in artifact.files))
                print(f"{number:>2}. {artifact.kind:<7} {repo_id}  {repo_url(repo_id, artifact.kind)}  ({len(artifact.files)} files, {size})")
                if artifact.kind != "dataset":
                    print(f"    {_front_matter_line(artifact)}")
                if artifact.kind == "space":
                    for name, file_size in artifact.files:
                        print(f"      {_human_size(file_size):>10}  {name}")
            return 0
        dataset_commit = _push(checked[0][1], dataset_id, token, api, config.private, config.revision, False)
        # The guards name the dataset at the revision just published.
        for repo_id, path, source in plan.staged(stage, DatasetRef(dataset_id, dataset_commit.oid), config)[1:]:
            _push(inspect_folder(path, token, source=source), repo_id, token, api, config.private, config.revision, False)
    print(f"published the run: dataset {dataset_id}, {len(plan.guards)} guards, Space {plan.space_repo_id}")
    return 0


# ---------------------------------------------------------------- downloading


def _download(config: PullConfig, api) -> tuple[Path, str]:
    repo_types = ("model", "dataset") if config.repo_type == "auto" else (config.repo_type,)
    for repo_type in repo_types:
        try:
            path = api.snapshot_download(
                config.repo,
                repo_type=repo_type,
                revision=config.revision,
                local_dir=config.local_dir,
                cache_dir=config.cache_dir,
            )
            return Path(path), repo_type
        except GatedRepoError:
            raise HubAccessError(
                f"{config.repo} is gated: accept its conditions on {repo_url(config.repo, repo_type)} and {LOGIN_HINT}"
            ) from None
        except RepositoryNotFoundError:
            continue
        except LocalEntryNotFoundError as error:  # not in the cache; either offline or the Hub did not answer
            if isinstance(error.__cause__, TRANSPORT_ERRORS):
                raise _hub_error(error.__cause__, config.repo) from None
            continue
        except RevisionNotFoundError:
            raise GuardkitError(f"{config.repo} has no revision '{config.revision}'") from None
        except (HfHubHTTPError, *TRANSPORT_ERRORS) as error:
            raise _hub_error(error, config.repo) from None
    kinds = " or ".join(repo_types)
    if is_offline_mode():
        raise HubAccessError(f"HF_HUB_OFFLINE is set and no {kinds} {config.repo} is in the cache; unset it to download")
    raise HubAccessError(
        f"no {kinds} {config.repo} on the Hub that this account can see; check the id (and {LOGIN_HINT} if it is private)"
    )


def pull(config: PullConfig, api: HfApi | None = None) -> int:
    """`guardkit pull ORG/NAME`: download a guardkit model or dataset into the Hub cache (or a folder) for offline use."""
    _check_repo_id(config.repo)
    path, repo_type = _download(config, api or HfApi())
    try:
        kind = detect_kind(path)
    except ArtifactError as error:
        raise ArtifactError(f"{config.repo} was downloaded to {path} but is not a guardkit model or dataset: {error}") from None
    if kind != repo_type:
        raise ArtifactError(f"{config.repo} is a {repo_type} repository but holds a guardkit {kind} folder ({path})")
    print(f"pulled {kind} {config.repo} into {path}")
    print("use it offline (export HF_HUB_OFFLINE=1):")
    if kind == "model":
        print(f'  from guardkit.guard import Guard; guard = Guard.from_pretrained("{path}")')
        if config.local_dir is None and config.cache_dir is None:
            revision = f", revision={config.revision!r}" if config.revision else ""
            print(f'  (or Guard.from_pretrained("{config.repo}"{revision}), which reads the same Hub cache)')
    else:
        print(f'  from guardkit.data.io import load_guard_dataset; splits, _ = load_guard_dataset("{path}", config="multitask")')
        print(f'  from datasets import load_dataset; splits = load_dataset("{path}", "default")')
    return 0
