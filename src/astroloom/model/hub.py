"""Models by name: a run on disk, a model shipped inside astroloom, or a Hugging Face Hub repo.

``resolve_model("runs/demo/run")`` is that folder; ``resolve_model("astroloom/mock-tiny")``
is the reference model installed with the package; any other ``owner/name`` (optionally
``owner/name@revision``) is fetched with ``huggingface_hub`` into its cache, so its standard
environment variables apply: ``HF_HUB_OFFLINE=1`` uses the cache only, ``HF_HUB_CACHE`` /
``HF_HOME`` move it, ``HF_TOKEN`` reads private repos.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

#: The files of a Hub model folder; a run's other files (checkpoints, metrics) stay home.
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json")
CARD_FILES = ("README.md", "impact.json", "bench.json")

#: Short names of the models installed with the package → their folder in astroloom/pretrained.
SHIPPED = {"astroloom/mock-tiny": "mock-tiny"}

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


class ModelNotFoundError(FileNotFoundError):
    """A name that is no local run, no shipped model and no reachable (or cached) Hub repo."""


def split_revision(name: str) -> tuple[str, str | None]:
    """``owner/name@rev`` → (``owner/name``, ``rev``); no ``@`` → no revision."""
    if "@" in name:
        repo, rev = name.rsplit("@", 1)
        return repo, rev or None
    return name, None


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.fullmatch(name)) and ".." not in name


def shipped_model(name: str) -> Path:
    folder = resources.files("astroloom") / "pretrained" / SHIPPED[name]
    return Path(str(folder))


def resolve_model(name_or_path: str | Path, revision: str | None = None) -> Path:
    """The local folder holding the model called ``name_or_path``: the path itself when it
    exists, the shipped model of that name, else a snapshot of the Hub repo (downloaded or
    from the cache)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    repo, rev = split_revision(str(name_or_path))
    rev = revision or rev
    if repo in SHIPPED and rev is None:
        return shipped_model(repo)
    if not looks_like_repo_id(repo):
        raise ModelNotFoundError(
            f"no run or checkpoint at {path} (from {Path.cwd()}), and {str(name_or_path)!r} is "
            f"not a model name (owner/name). Shipped models: {', '.join(SHIPPED)}"
        )
    return download(repo, rev)


def download(repo_id: str, revision: str | None = None) -> Path:
    """A snapshot of the model files of ``repo_id`` through the Hugging Face cache."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = snapshot_download(
            repo_id, revision=revision, allow_patterns=[*MODEL_FILES, *CARD_FILES]
        )
    except RevisionNotFoundError as err:
        raise ModelNotFoundError(f"the Hub repo {repo_id} has no revision {revision!r}") from err
    except RepositoryNotFoundError as err:
        raise ModelNotFoundError(
            f"no model {repo_id} on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from err
    except LocalEntryNotFoundError as err:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise ModelNotFoundError(
            f"{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}. "
            f"Fetch it where there is internet (`hf download {repo_id}`, then copy the cache "
            "or point HF_HUB_CACHE at it), or give the path of a local model folder."
        ) from err
    except HfHubHTTPError as err:
        raise ModelNotFoundError(f"could not fetch {at} from the Hub: {err}") from err
    folder = Path(folder)
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{at} (snapshot {folder}) lacks {missing}: it is not an astroloom model folder "
            "(write one with `astroloom push RUN REPO_ID`)"
        )
    return folder
