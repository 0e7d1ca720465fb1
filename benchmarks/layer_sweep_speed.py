"""The bench's layer sweep: every block's embedding from one pass through the blocks against
one embedding per layer (as the bench made them before), on a run's own images.

    .venv/bin/python benchmarks/layer_sweep_speed.py RUN DATA [--n 1000] [--rounds 3]

Both ways give the same vectors (checked here, and in tests/test_probe.py); the figure is
the ratio of their wall times in one process, rounds alternating, medians.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from astroloom.data.shards import load_image_set
from astroloom.evaluate.embed import embed_images, embed_images_by_layer
from astroloom.model.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model, cfg, tokenizer = load_checkpoint(args.run)
    images = load_image_set(args.data).images[: args.n]
    depths = list(range(cfg.model.n_layer + 1))
    layer = model.default_layer()

    def per_layer() -> dict[int, np.ndarray]:
        return {d: embed_images(model, tokenizer, images, d, progress=False) for d in depths}

    def one_pass() -> dict[int, np.ndarray]:
        return embed_images_by_layer(model, tokenizer, images, [layer, *depths], progress=False)

    times: dict[str, list[float]] = {"per layer": [], "one pass": []}
    for _ in range(args.rounds):
        for name, how in (("per layer", per_layer), ("one pass", one_pass)):
            began = time.perf_counter()
            out = how()
            times[name].append(time.perf_counter() - began)
            if name == "per layer":
                reference = out
            else:
                worst = max(np.abs(out[d] - reference[d]).max() for d in depths)
                assert worst <= 1e-4 * np.abs(reference[layer]).max(), worst
    slow, fast = (float(np.median(times[k])) for k in ("per layer", "one pass"))
    print(
        f"{len(images)} images, layers {depths}, four turns: per layer {slow:.1f} s, "
        f"one pass {fast:.1f} s; {slow / fast:.2f}× faster (medians of {args.rounds})"
    )


if __name__ == "__main__":
    main()
