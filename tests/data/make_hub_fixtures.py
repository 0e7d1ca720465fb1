"""How tests/data's frozen model files were made (run once; the tests never run this).

* ``checkpoint-v2/``: a tiny four-modality model in checkpoint format version 2, kept so that
  every later astroloom is tested to load it (tests/test_hub.py).
* ``embeddings.json``: the embeddings of ``reference_observations()`` by that checkpoint and
  by the shipped ``astroloom/mock-tiny`` model, which later versions must reproduce.

    .venv/bin/python tests/data/make_hub_fixtures.py SURVEY_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def reference_observations():
    """Three analytic galaxies (no random numbers, no simulator): a round one, an
    elongated one and a faint one, each with catalogue fluxes."""
    from astroloom.data.schema import Observation

    y, x = np.mgrid[:64, :64] - 31.5
    out = []
    for k, (flux, axis, width) in enumerate(((40.0, 1.0, 3.0), (25.0, 0.4, 5.0), (3.0, 0.8, 2.0))):
        r2 = x**2 + (y / axis) ** 2
        bands = [flux * f * np.exp(-r2 / (2 * width**2)) for f in (0.6, 1.0, 1.4)]
        ripple = 0.02 * np.sin(0.3 * x + k) * np.cos(0.2 * y)  # a fixed 'noise' pattern
        image = (np.stack(bands) + ripple).astype(np.float32)
        phot = np.array([b.sum() for b in bands], np.float32)
        out.append(Observation(f"ref-{k}", {"image": image, "photometry": phot}))
    return out


def embeddings_of(model_name: str) -> list[list[float]]:
    from astroloom.model.foundation import Foundation

    f = Foundation.from_pretrained(model_name)
    return f.embed(f.tokens_from_observations(reference_observations()), pool="meanstd").tolist()


def main(survey: str) -> None:
    from astroloom.config import load_config
    from astroloom.train.loop import train

    work = HERE / "_tmp_run"
    shutil.rmtree(work, ignore_errors=True)
    cfg = load_config(
        None,
        [
            "model.n_layer=1",
            "model.n_embd=32",
            "model.n_head=2",
            "model.modalities=['image','spectrum','photometry','lightcurve']",
            "model.objective='mixed'",
            f"data.path='{survey}'",
            f"out='{work}'",
            "train.steps=20",
            "train.batch_size=8",
            "train.eval_every=20",
            "train.checkpoint_every=20",
        ],
    )
    train(cfg, progress=False)
    target = HERE / "checkpoint-v2"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copyfile(work / "final" / name, target / name)
    shutil.rmtree(work)
    record = {
        "checkpoint-v2": embeddings_of(str(target)),
        "astroloom/mock-tiny": embeddings_of("astroloom/mock-tiny"),
    }
    (HERE / "embeddings.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
