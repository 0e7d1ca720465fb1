"""Paths that one file records of another (a denoiser's foundation run, the run and data
an embeddings file came from, an ingested dataset's source).

They are stored relative to the directory of the file that records them, so a tree of runs
keeps working when it is moved or read from another working directory, and resolved back
against that directory on reading. Files written before this rule recorded paths relative
to the working directory of the command that wrote them; those are still found when read
from that directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def record_path(target: str | Path, recorder_dir: str | Path) -> str:
    """``target`` as the file in ``recorder_dir`` should record it."""
    target, recorder_dir = Path(target).resolve(), Path(recorder_dir).resolve()
    try:
        return os.path.relpath(target, recorder_dir)
    except ValueError:  # another drive (Windows): only an absolute path will do
        return str(target)


def record_run(value: str | Path, recorder_dir: str | Path) -> str:
    """A run (or dataset) as the file in ``recorder_dir`` should record it: a folder on disk
    relative to ``recorder_dir`` (:func:`record_path`), a model name (shipped or on the Hub)
    as given."""
    return record_path(value, recorder_dir) if Path(value).exists() else str(value)


def resolve_recorded(value: str | Path, recorder_dir: str | Path) -> Path:
    """The path a file in ``recorder_dir`` recorded as ``value``, from any working directory."""
    path = Path(value)
    if path.is_absolute():
        return path
    beside = Path(recorder_dir) / path
    if beside.exists() or not path.exists():
        return beside.resolve() if beside.exists() else beside
    return path.resolve()  # written before paths were recorded relative to their file
