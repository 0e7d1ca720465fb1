"""Models by name: the shipped model, a frozen old checkpoint, the Hub cache offline, and
`astroloom push` with its model card and upload (HTTP layer mocked: no network in tests)."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from astroloom.config import ConfigError, config_from_json
from astroloom.model.checkpoint import CheckpointError
from astroloom.model.foundation import Foundation
from astroloom.model.hub import ModelNotFoundError, resolve_model, split_revision

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_hub_fixtures import reference_observations  # noqa: E402

RECORDED = json.loads((DATA / "embeddings.json").read_text())


def embed_reference(model: Foundation) -> np.ndarray:
    return model.embed(model.tokens_from_observations(reference_observations()), pool="meanstd")


def test_shipped_model_loads_by_name_and_reproduces_its_recorded_embedding():
    model = Foundation.from_pretrained("astroloom/mock-tiny")
    assert model.modalities == ["image", "spectrum", "photometry", "lightcurve"]
    got = embed_reference(model)
    np.testing.assert_allclose(got, RECORDED["astroloom/mock-tiny"], atol=1e-5, rtol=0)
    # The three galaxies differ: a check that a constant vector would not pass.
    assert np.linalg.norm(got[0] - got[1]) > 100 * 1e-5
    card = (resolve_model("astroloom/mock-tiny") / "README.md").read_text()
    assert "Trained on simulated data" in card and "co2_eq_emissions" in card


def test_checkpoint_of_format_version_2_loads_forever(tmp_path):
    """A checkpoint written by astroloom 0.1 in format 2, kept in the repository: every
    later version must load it and embed as it did."""
    model = Foundation.from_pretrained(DATA / "checkpoint-v2")
    np.testing.assert_allclose(
        embed_reference(model), RECORDED["checkpoint-v2"], atol=1e-5, rtol=0
    )
    # A config from a newer astroloom says which version wrote it and what to do.
    raw = json.loads((DATA / "checkpoint-v2" / "config.json").read_text())
    raw.update(format_version=99, written_by="9.9.0")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"format version 99 \(written by astroloom 9.9.0\)"):
        config_from_json(tmp_path / "config.json")


def fake_hub_cache(root: Path, repo_id: str, files: Path, commit: str = "a" * 40) -> Path:
    """A folder laid out as huggingface_hub's cache after `hf download repo_id`."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files.iterdir():
        if f.is_file():
            blob = repo / "blobs" / f"{f.name}-blob"
            blob.parent.mkdir(exist_ok=True)
            shutil.copyfile(f, blob)
            (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def offline_env(cache: Path) -> dict:
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def test_hub_model_from_the_cache_offline_on_the_command_line(survey_dir, tmp_path):
    cache = tmp_path / "hub"
    fake_hub_cache(cache, "someone/tiny", DATA / "checkpoint-v2")
    out = tmp_path / "emb.parquet"
    args = ["embed", "--model", "someone/tiny", str(survey_dir), "--out", str(out)]
    result = cli(*args, env=offline_env(cache), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    from astroloom.evaluate.embed import read_embeddings

    emb = read_embeddings(out)
    assert len(emb.ids) > 300 and np.isfinite(emb.vectors).all()

    # A name that is not in the cache, offline: said so, with how to fetch it.
    missing = cli("embed", "--model", "someone/other", str(survey_dir), env=offline_env(cache))
    assert missing.returncode == 2
    assert "not in the Hugging Face cache" in missing.stderr and "HF_HUB_OFFLINE" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_truncated_download_is_refused_with_the_file_named(tmp_path, monkeypatch):
    files = tmp_path / "files"
    shutil.copytree(DATA / "checkpoint-v2", files)
    weights = files / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fake_hub_cache(tmp_path / "hub", "someone/broken", files)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"cannot read weights .*model\.safetensors"):
        Foundation.from_pretrained("someone/broken")
    with pytest.raises(ModelNotFoundError, match="not a model name"):
        resolve_model("no/such/../path")
    assert split_revision("owner/name@v1.0") == ("owner/name", "v1.0")


def test_push_writes_a_hub_card_and_uploads_through_the_hub_api(
    trained_run, tmp_path, monkeypatch
):
    import huggingface_hub
    from huggingface_hub import ModelCard

    bench = tmp_path / "bench.json"
    rows = [
        {"target": "redshift", "metric": "r2", "budget": -1, "foundation": 0.91},
        {"target": "redshift", "metric": "r2", "budget": 30, "foundation": 0.5},
        {"target": "morphology", "metric": "macro_f1", "budget": -1, "foundation": 0.87},
    ]
    bench.write_text(json.dumps({"versus_best_baseline": rows}))
    from astroloom.model.publish import upload, write_hub_folder

    folder = write_hub_folder(trained_run, "me/galaxies", tmp_path / "hub", bench)
    card = ModelCard.load(folder / "README.md")
    impact = json.loads((trained_run / "impact.json").read_text())
    assert card.data.license == "mit" and "astronomy" in card.data.tags
    assert "simulated-data" in card.data.tags  # trained on the mock survey
    assert card.data.co2_eq_emissions["emissions"] == pytest.approx(
        1000 * impact["co2e_kg"], rel=1e-3
    )
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {"r2 (redshift)": 0.91, "macro_f1 (morphology)": 0.87}  # 'all' budget
    # The folder loads as a model, and embeds as the run does.
    a = embed_reference_image(Foundation.from_pretrained(folder))
    b = embed_reference_image(Foundation.from_pretrained(trained_run))
    np.testing.assert_array_equal(a, b)

    sent = mock_hub_http()
    try:
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)  # not logged in
        assert upload(folder, "me/galaxies") is None
        assert not sent  # nothing was sent without a token
        url = upload(folder, "me/galaxies", token="hf_test")
    finally:
        from huggingface_hub.utils import _http

        _http.set_client_factory(_http.default_client_factory)
    assert url.endswith("/commit/abc")
    created = [r for r in sent if r[1].endswith("/api/repos/create")]
    assert created and json.loads(created[0][2])["name"] == "galaxies"
    commit = next(body for method, url_, body in sent if "/commit/main" in url_)
    paths = {json.loads(line)["value"].get("path") for line in commit.splitlines()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= paths


def embed_reference_image(model: Foundation) -> np.ndarray:
    obs = reference_observations()
    for o in obs:
        o.modalities.pop("photometry")
    return model.embed(model.tokens_from_observations(obs))


def mock_hub_http() -> list:
    """Answer the Hub's HTTP API in-process; return the list the requests are logged to."""
    import httpx2
    from huggingface_hub.utils import _http

    sent = []

    def handler(request):
        url = str(request.url)
        sent.append((request.method, url, request.content.decode()))
        if url.endswith("/api/repos/create"):
            return httpx2.Response(200, json={"url": "https://huggingface.co/me/galaxies"})
        if url.endswith("/api/validate-yaml"):  # the Hub checks the card's metadata
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in url:
            files = json.loads(request.content)["files"]
            regular = {"uploadMode": "regular", "shouldIgnore": False}
            modes = [{"path": f["path"], **regular} for f in files]
            return httpx2.Response(200, json={"files": modes})
        if "/commit/" in url:
            commit = {"commitUrl": "https://huggingface.co/me/galaxies/commit/abc"}
            return httpx2.Response(200, json={**commit, "commitOid": "b" * 40})
        return httpx2.Response(404, json={"error": f"not mocked: {url}"})

    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler)))
    return sent


def test_push_on_the_command_line_without_a_token_writes_the_folder(trained_run, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_TOKEN", None)
    result = cli("push", str(trained_run), "me/galaxies", "--out", str(tmp_path / "f"), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nothing was uploaded" in result.stdout
    assert (tmp_path / "f" / "README.md").is_file()
    bad = cli("push", str(trained_run), "not a repo", env=env)
    assert bad.returncode == 2 and "not a Hub repository id" in bad.stderr
