"""Survey simulation rate, bytes per object, and streaming shards → tokenised tensors.

    .venv/bin/python benchmarks/data_loading.py --galaxies 4000 --stars 1000
    .venv/bin/python benchmarks/data_loading.py --reuse DIR --copies 250   # ~1 M objects streamed

Streaming reads the shards through ShardStream in batch mode (one loader process, batches
of 256 drawn from a 1,000-row shuffle pool) and tokenises every batch; peak RSS is
reported so that memory can be seen to stay flat.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from astroloom.data.sim.survey import simulate_survey
from astroloom.data.stream import ShardStream
from astroloom.tokenize.image import ImageTokenizer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream_rate(directory: Path, copies: int) -> tuple[float, int]:
    stream = ShardStream(directory, shuffle_buffer=1000, rank=0, world=1, batch_size=256)
    # Listing the same row groups many times makes a large dataset without the disk space.
    stream.units = stream.units * copies
    tokenizer = ImageTokenizer(8, stream.info.normalisation["image"]["scale"])
    count, start = 0, time.perf_counter()
    for batch in DataLoader(stream, batch_size=None):
        tokenizer.encode(torch.as_tensor(batch["image"]))  # the loader made it a tensor
        count += len(batch["id"])
    return count / (time.perf_counter() - start), count


def render_rate(n: int = 300) -> float:
    """Survey galaxies (3-band 64×64, PSF, noise) rendered per second on one core."""
    from astroloom.data.sim.population import draw_population
    from astroloom.data.sim.survey import render_survey_galaxy

    pop = draw_population(n, seed=0)
    start = time.perf_counter()
    for j in range(n):
        render_survey_galaxy(pop, j, j, 0, ["g", "r", "z"], None, 0.0)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=4000)
    parser.add_argument("--stars", type=int, default=1000)
    parser.add_argument("--reuse", type=Path, default=None)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.reuse is None:
        print(f"render survey galaxies, one core: {render_rate():,.0f} galaxies/s")
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.reuse or Path(tmp)
        if args.reuse is None:
            start = time.perf_counter()
            simulate_survey(directory, n_galaxies=args.galaxies, n_stars=args.stars, progress=False)
            elapsed = time.perf_counter() - start
            n = args.galaxies + args.stars
            print(
                f"simulate_survey: {n} objects in {elapsed:.1f} s = {n / elapsed:.0f} objects/s "
                f"(2 processes, population and OGLE catalogue load included)"
            )
            for prefix in ("galaxies", "stars"):
                files = list(directory.glob(f"{prefix}-*.parquet"))
                count = args.galaxies if prefix == "galaxies" else args.stars
                size = sum(f.stat().st_size for f in files)
                print(f"storage {prefix}: {size / max(count, 1):,.0f} bytes/object")
        rate, count = stream_rate(directory, args.copies)
        print(
            f"stream → tokens: {count} images at {rate:,.0f} images/s (1 process, 1 thread); "
            f"peak RSS {peak_rss_mb():,.0f} MB"
        )


if __name__ == "__main__":
    main()
