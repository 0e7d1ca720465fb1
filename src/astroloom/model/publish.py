"""A run as a Hugging Face Hub model: the folder, its model card, and the upload.

The folder holds what loading needs (``model.safetensors``, ``config.json``,
``tokenizer.json``) and a ``README.md`` whose YAML header is the Hub's model-card metadata:
licence, tags, ``co2_eq_emissions`` from the run's ``impact.json`` (the review's energy
statement) and a ``model-index`` from ``astroloom bench`` when the run has been benched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from astroloom.model.checkpoint import CheckpointError, find_checkpoint
from astroloom.model.hub import MODEL_FILES

LICENSE = "mit"
TASK_TYPE = {"r2": "tabular-regression", "macro_f1": "tabular-classification"}


def run_dir_of(checkpoint: Path) -> Path:
    """The run a checkpoint belongs to (``run/final`` or ``run/checkpoints/step-N``)."""
    if checkpoint.name == "final":
        return checkpoint.parent
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    return checkpoint


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err


def eval_results(bench: dict[str, Any], dataset_name: str) -> list:
    """The bench's all-label linear-probe figures as Hub ``model-index`` entries."""
    from huggingface_hub import EvalResult

    out = []
    for row in bench.get("versus_best_baseline", []):
        if row["budget"] >= 0:
            continue
        out.append(
            EvalResult(
                task_type=TASK_TYPE.get(row["metric"], "feature-extraction"),
                task_name=f"{row['target']} (linear probe on frozen embeddings)",
                dataset_type="astroloom-bench",
                dataset_name=dataset_name,
                metric_type=row["metric"],
                metric_value=round(float(row["foundation"]), 4),
                metric_name=f"{row['metric']} ({row['target']})",
            )
        )
    return out


def co2_metadata(impact: dict[str, Any]) -> dict[str, Any]:
    """The Hub's ``co2_eq_emissions`` block (emissions in grams) from ``impact.json``."""
    return {
        "emissions": float(f"{1000.0 * float(impact['co2e_kg']):.4g}"),
        "source": f"astroloom impact.json: {impact.get('energy_method', 'estimate')}",
        "training_type": "pre-training",
        "hardware_used": f"{impact.get('n_devices', 1)} × {impact.get('device', '?')}",
    }


def model_card(
    repo_id: str,
    cfg: dict[str, Any],
    impact: dict[str, Any] | None,
    bench: dict[str, Any] | None,
    body: str,
) -> str:
    """README.md for the Hub: YAML metadata, the run's own card, how to load it."""
    from huggingface_hub import ModelCard, ModelCardData

    modalities = cfg["model"].get("modalities", ["image"])
    data_name = str(cfg.get("data_name") or "astroloom dataset")
    simulated = "mock" in data_name
    data = ModelCardData(
        license=LICENSE,
        library_name="astroloom",
        pipeline_tag="feature-extraction",
        tags=["astronomy", "astroloom", "foundation-model", *modalities]
        + (["simulated-data"] if simulated else []),
        model_name=repo_id,
        co2_eq_emissions=co2_metadata(impact) if impact else None,
        eval_results=eval_results(bench, data_name) if bench else None,
    )
    caveat = (
        "\n> **Trained on simulated data.** The galaxies, spectra and light curves this "
        "model has seen come from astroloom's mock survey. Its embeddings transfer to real "
        "data only as far as the domain-shift benchmark in docs/benchmarks.md shows; for a "
        "real survey, continue pretraining on it first (`astroloom train --init "
        f"{repo_id} --set data.path=YOUR_DATA`).\n"
        if simulated
        else ""
    )
    usage = (
        "\n## Use\n\n```python\nfrom astroloom.model.foundation import Foundation\n\n"
        f'model = Foundation.from_pretrained("{repo_id}")\n```\n\n'
        f"or on the command line: `astroloom embed {repo_id} DATA`.\n"
    )
    body = body.split("\n", 1)[1] if body.startswith("# ") else body
    template = f"---\n{{{{ card_data }}}}\n---\n\n# {repo_id}\n{caveat}{body}{usage}"
    return str(ModelCard.from_template(data, template_str=template))


def write_hub_folder(
    run: str | Path, repo_id: str, out: str | Path, bench: str | Path | None = None
) -> Path:
    """Copy what loading ``run`` needs into ``out`` with a Hub model card (README.md)."""
    ckpt = find_checkpoint(run)
    home = run_dir_of(ckpt)
    out = Path(out)
    if out.resolve() in (ckpt.resolve(), home.resolve()):
        raise CheckpointError(f"--out {out} is the run itself; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if name != "config.json":  # written below, with the data path scrubbed
            shutil.copyfile(ckpt / name, out / name)
    impact = _read_json(home / "impact.json")
    bench_path = Path(bench) if bench is not None else home / "bench" / "bench.json"
    if bench is not None and not bench_path.is_file():
        raise FileNotFoundError(f"no bench results at {bench_path} (run `astroloom bench`)")
    bench_data = _read_json(bench_path)
    for name, payload in (("impact.json", impact), ("bench.json", bench_data)):
        if payload is not None:
            (out / name).write_text(json.dumps(payload, indent=2))
        else:
            (out / name).unlink(missing_ok=True)
    cfg = json.loads((ckpt / "config.json").read_text())
    dataset = _read_json(Path(cfg["data"]["path"]) / "dataset.json") or {}
    # The training data's path means nothing on another machine: keep its name only.
    published = json.loads(json.dumps(cfg))
    published["data"]["path"] = f"{dataset.get('name', 'dataset')} (not included)"
    (out / "config.json").write_text(json.dumps(published, indent=2) + "\n")
    cfg["data_name"] = dataset.get("name") or dataset.get("kind")
    card = home / "MODEL_CARD.md"
    body = card.read_text() if card.is_file() else ""
    (out / "README.md").write_text(model_card(repo_id, cfg, impact, bench_data, body))
    return out


def upload(
    folder: str | Path, repo_id: str, token: str | None = None, private: bool = False
) -> str | None:
    """Create ``repo_id`` if needed and upload ``folder`` as one commit; ``None`` (nothing
    sent) when no token is given or stored by ``hf auth login``."""
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        return None
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, commit_message="Upload with astroloom push"
    )
    return str(info.commit_url)
