"""Training that streams: peak memory of a run over a million distinct simulated objects.

    .venv/bin/python benchmarks/stream_training.py simulate runs/stream-1m --objects 1000000
    .venv/bin/python benchmarks/stream_training.py train runs/stream-1m --steps 3600

``simulate`` renders galaxies of the mock survey's population (SkyPy draws; bulge + disk
with the galaxy's shear, Gaussian PSF and sky noise, drawn with NumPy for a whole shard at
once) as 3-band 32×32 cutouts with their catalogue photometry — every 50,000 objects an
independent population draw, so every object is distinct — written a shard at a time
(resumable: finished chunks are kept). 32-pixel cutouts keep a million objects
at ~14 GB of disk; held in memory they would still need far more than the 3 GB the run
must stay under.

``train`` runs ``astroloom train`` with ``data.stream = true`` (two loader workers) and
samples the memory of the whole process tree (the trainer and its loader workers) once a
second: RSS summed (an upper bound: forked workers share pages) and PSS (shared pages
split between the processes that map them). It prints the peak and the curve, so that
memory can be seen to stay flat while the stream passes through the data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import psutil

BANDS = ["g", "r", "z"]


def render(pop, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, size, size)`` of a population slice and their true band fluxes: an
    exponential disk and a de Vaucouleurs bulge (half its radius) sharing the galaxy's
    shear, a Gaussian PSF of FWHM 0.9–1.6″, sky noise — the survey's model drawn with NumPy
    for the whole slice at once, since GalSim at ~250 galaxies/s/core would spend 35
    minutes of both cores on a million."""
    from astroloom.data.sim.galaxies import PIXEL_SCALE, ZERO_POINT
    from astroloom.data.sim.survey import NOISE

    n = len(pop)
    hlr = np.clip(pop.half_light_radius, 0.1, 4.0) / PIXEL_SCALE
    g = np.minimum(pop.ellipticity, 0.9)
    q = (1 - g) / (1 + g)
    beta = rng.uniform(0, np.pi, n)
    centre = (size - 1) / 2 + rng.uniform(-0.5, 0.5, (n, 2))
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    dx = xx[None] - centre[:, 1, None, None]
    dy = yy[None] - centre[:, 0, None, None]
    cos, sin = np.cos(beta)[:, None, None], np.sin(beta)[:, None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    r = np.sqrt(u**2 * q[:, None, None] + v**2 / q[:, None, None])
    disk = np.exp(-1.678 * r / hlr[:, None, None])
    bulge = np.exp(-7.669 * ((r / (0.5 * hlr[:, None, None])).clip(1e-6) ** 0.25 - 1))
    disk /= disk.sum(axis=(1, 2), keepdims=True)
    bulge /= bulge.sum(axis=(1, 2), keepdims=True)
    bt = pop.bulge_to_total[:, None, None]
    light = bt * bulge + (1 - bt) * disk
    sigma = rng.uniform(0.9, 1.6, n) / PIXEL_SCALE / 2.3548
    ky = np.fft.fftfreq(size)[:, None]
    kx = np.fft.rfftfreq(size)[None, :]
    psf = np.exp(-2 * np.pi**2 * sigma[:, None, None] ** 2 * (kx**2 + ky**2))
    light = np.fft.irfft2(np.fft.rfft2(light) * psf, s=(size, size))
    fluxes = 10 ** (-0.4 * (pop.mags - ZERO_POINT))
    noise = np.array([NOISE[b] for b in BANDS])[None, :, None, None]
    images = fluxes[:, :, None, None] * light[:, None] + rng.normal(size=(n, 3, size, size)) * noise
    return images.astype(np.float32), fluxes


def _chunk(args: tuple[Path, int, int, int, int]) -> int:
    """One independent population draw, rendered and written as ``shard_size`` shards."""
    from astroloom.data.shards import write_table
    from astroloom.data.sim.population import draw_population
    from astroloom.data.sim.survey import (
        DEPTH_5SIGMA,
        ZERO_POINT,
        _columns,
        colour_names,
        galaxy_labels,
    )

    out, c, n, first_shard, shard_size = args
    shards = range(first_shard, first_shard + -(-n // shard_size))
    if all((out / f"galaxies-{k:05d}.parquet").exists() for k in shards):
        return n
    pop = draw_population(n, seed=1000 + c)
    rng = np.random.default_rng([1000, c])
    flux_err = np.array([10 ** (-0.4 * (DEPTH_5SIGMA[b] - ZERO_POINT)) / 5 for b in BANDS])
    meta = galaxy_labels(BANDS)
    for s, k in enumerate(shards):
        part = pop.take(np.arange(s * shard_size, min((s + 1) * shard_size, n)))
        images, fluxes = render(part, rng, SIZE[0])
        m = len(part)
        phot = (fluxes + rng.normal(size=fluxes.shape) * flux_err).astype(np.float32)
        ivar = np.broadcast_to((1 / flux_err**2).astype(np.float32), phot.shape)
        mags = part.mags
        labels = {
            "redshift": part.redshift,
            "log_stellar_mass": np.log10(part.stellar_mass),
            **{name: mags[:, i] - mags[:, i + 1] for i, name in enumerate(colour_names(BANDS))},
            "mag_r": mags[:, 1],
            "bulge_to_total": part.bulge_to_total,
            "half_light_radius": np.clip(part.half_light_radius, 0.1, 4.0),
            "ellipticity": np.minimum(part.ellipticity, 0.9),
            "psf_fwhm": np.full(m, np.nan),
            "morph_type": part.morphology.astype(str),
            "is_rare": np.zeros(m),
        }
        labels = {key: list(labels.get(key, [None] * m)) for key in meta}
        columns = _columns(
            [f"stream-{k:05d}-{j:04d}" for j in range(m)],
            "galaxy",
            images=list(images),
            phot=(list(phot), list(ivar)),
            labels=labels,
            label_meta=meta,
        )
        write_table(out / f"galaxies-{k:05d}.parquet", columns)
    return n


SIZE = [32]


def simulate(out: Path, n_objects: int, size: int, shard_size: int, workers: int) -> None:
    from tqdm.auto import tqdm

    from astroloom.data.normalise import save_with_normalisation
    from astroloom.data.schema import DatasetInfo, ImageMeta
    from astroloom.data.sim.galaxies import PIXEL_SCALE
    from astroloom.data.sim.survey import ZERO_POINT, galaxy_labels

    out.mkdir(parents=True, exist_ok=True)
    SIZE[0] = size
    n_shards = -(-n_objects // shard_size)
    chunk = 50 * shard_size  # one population draw (~20 s of SkyPy) per 50 shards
    jobs = [
        (out, c, min(chunk, n_objects - c * chunk), c * 50, shard_size)
        for c in range(-(-n_objects // chunk))
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool, tqdm(total=n_objects, unit="obj") as bar:
        for count in pool.map(_chunk, jobs):
            bar.update(count)
    elapsed = time.perf_counter() - start
    info = DatasetInfo(
        name="stream-benchmark",
        n_objects=n_objects,
        shards=[f"galaxies-{k:05d}.parquet" for k in range(n_shards)],
        image=ImageMeta(bands=BANDS, shape=[3, size, size], pixel_scale_arcsec=PIXEL_SCALE),
        labels=galaxy_labels(BANDS),
        modalities={
            "photometry": {
                "columns": ["phot_flux", "phot_ivar"],
                "bands": BANDS,
                "unit": "nanomaggy",
                "zero_point_mag": ZERO_POINT,
            }
        },
        provenance={"generator": "benchmarks/stream_training.py", "cutout": size},
        seed=1000,
    )
    save_with_normalisation(info, out)
    disk = sum(p.stat().st_size for p in out.glob("*.parquet"))
    print(
        f"simulated {n_objects:,} objects in {elapsed:.0f} s ({n_objects / elapsed:,.0f}/s, "
        f"{workers} processes); {disk / 1e9:.2f} GB on disk ({disk / n_objects:,.0f} B/object)"
    )


def tree_memory(pid: int) -> tuple[float, float, int]:
    """RSS summed, PSS summed (MB) and the process count of ``pid`` and its children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0, 0
    rss = pss = 0.0
    for p in procs:
        try:
            full = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += full.rss
        pss += getattr(full, "pss", full.rss)
    return rss / 2**20, pss / 2**20, len(procs)


def train(data: Path, steps: int, batch: int, workers: int, out: Path, extra: list[str]) -> None:
    cmd = [
        sys.executable, "-m", "astroloom.cli", "train", "configs/stream-benchmark.toml",
        "--set", f"data.path={data}", "--set", f"out={out}",
        "--set", f"train.steps={steps}", "--set", f"train.batch_size={batch}",
        "--set", f"data.workers={workers}", *extra,
    ]  # fmt: skip
    print(" ".join(cmd))
    samples: list[tuple[float, float, float, int]] = []
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sample() -> None:
        while proc.poll() is None:
            rss, pss, n = tree_memory(proc.pid)
            samples.append((time.perf_counter() - began, rss, pss, n))
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-20:]
    proc.wait()
    sampler.join()
    if proc.returncode:
        print("".join(tail))
        raise SystemExit(f"train failed with exit status {proc.returncode}")
    wall = time.perf_counter() - began
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    pss = np.array([s[2] for s in samples])
    print(f"wall {wall:.0f} s; {steps} steps × {batch} = {steps * batch:,} objects drawn")
    print(f"final loss {rows[-1]['loss']:.4f}, val {rows[-1].get('val_loss')}")
    print(f"peak RSS (tree, summed) {rss.max():,.0f} MB; peak PSS (tree) {pss.max():,.0f} MB")
    for q in (0.1, 0.25, 0.5, 0.75, 1.0):
        i = min(int(q * (len(t) - 1)), len(t) - 1)
        print(f"  at {t[i]:6.0f} s: RSS {rss[i]:7,.0f} MB, PSS {pss[i]:7,.0f} MB")
    half = len(t) // 2
    print(
        f"PSS, mean of the first half after warm-up {pss[5:half].mean():,.0f} MB vs second "
        f"half {pss[half:].mean():,.0f} MB"
    )
    np.savez(out / "memory.npz", t=t, rss=rss, pss=pss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate")
    s.add_argument("out", type=Path)
    s.add_argument("--objects", type=int, default=1_000_000)
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--shard-size", type=int, default=1000)
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path)
    t.add_argument("--steps", type=int, default=3600)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--out", type=Path, default=Path("runs/stream-benchmark"))
    t.add_argument("extra", nargs="*", help="more --set options for astroloom train")
    args = parser.parse_args()
    if args.command == "simulate":
        simulate(args.out, args.objects, args.size, args.shard_size, args.workers)
    else:
        train(args.data, args.steps, args.batch, args.workers, args.out, args.extra)


if __name__ == "__main__":
    main()
