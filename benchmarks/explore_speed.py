"""The web explorer under a survey of 100,000 objects (docs/benchmarks.md, "Explorer").

    .venv/bin/python benchmarks/explore_speed.py [--n 100000] [--dim 128]

Builds a survey of ``--n`` objects with ``--dim``-dimensional embeddings (a mixture of 20
clusters, with a numeric and a class label; no pixels: the figures are about the map and
the index), prepares the explorer's layout (UMAP and anomaly scores, timed and cached),
then starts ``astroloom explore`` in its own process on loopback and measures:

1. neighbour queries through the API (500 random objects): p50 and p95 latency;
2. the map page in headless Chromium: time from navigation to every point drawn;
3. 20 concurrent clients for 30 s (neighbours, object pages, anomalies, the map's data):
   requests answered, errors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from astroloom.evaluate.embed import Embeddings, read_embeddings, write_embeddings
from astroloom.explore.survey import cached_layout


def build(out: Path, n: int, dim: int, template: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, dim)) * 3
    cluster = rng.integers(0, 20, n)
    vectors = (centres[cluster] + rng.normal(size=(n, dim))).astype(np.float32)
    ids = np.array([f"obj-{i:07d}" for i in range(n)], dtype=object)
    redshift = np.clip(0.05 * cluster + rng.normal(0, 0.05, n), 0, None)
    kinds = np.array(["early" if c % 3 == 0 else "late" for c in cluster], dtype=object)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    info = json.loads((template / "dataset.json").read_text())
    info.update(name="explore-bench", n_objects=n, shards=[], modalities={})
    info["image"]["shape"] = []  # labels and embeddings only: no pixels to serve
    info["labels"] = {k: info["labels"][k] for k in ("redshift", "morph_type")}
    per = 25_000
    for k, lo in enumerate(range(0, n, per)):
        name = f"part-{k:03d}.parquet"
        table = pa.table(
            {
                "id": pa.array(list(ids[lo : lo + per])),
                "redshift": pa.array(redshift[lo : lo + per]),
                "morph_type": pa.array(list(kinds[lo : lo + per])),
            }
        )
        pq.write_table(table, data / name, row_group_size=5000)
        info["shards"].append(name)
    (data / "dataset.json").write_text(json.dumps(info, indent=2))
    emb = out / "embeddings.parquet"
    meta = {"layer": 3, "pool": "meanstd", "modalities": ["image"]}
    write_embeddings(
        emb, Embeddings(ids, vectors, {"redshift": redshift, "morph_type": kinds}, meta)
    )
    return data, emb


def get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        if reply.status != 200:
            raise OSError(f"{url}: HTTP {reply.status}")
        return reply.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("runs/explore-bench"))
    parser.add_argument("--template", type=Path, default=Path("runs/interpret-survey"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    result: dict = {"n": args.n, "dim": args.dim}
    data, emb = build(args.out, args.n, args.dim, args.template)
    start = time.perf_counter()
    cached_layout(emb, read_embeddings(emb))
    result["layout_seconds"] = time.perf_counter() - start
    print(f"layout (UMAP + anomaly scores, cached): {result['layout_seconds']:.1f} s")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "astroloom.cli", "explore", "astroloom/mock-tiny", str(data),
         "--embeddings", str(emb), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        start = time.perf_counter()
        while True:
            try:
                get(base + "/api/anomalies?limit=1", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - start > 300:
                    raise SystemExit("the explorer did not start") from None
                time.sleep(0.5)
        result["startup_seconds"] = time.perf_counter() - start
        rng = np.random.default_rng(1)
        ids = [f"obj-{i:07d}" for i in rng.integers(0, args.n, 500)]
        latency = []
        for object_id in ids:
            t = time.perf_counter()
            get(f"{base}/api/objects/{object_id}/neighbours?k=12")
            latency.append(1000 * (time.perf_counter() - t))
        q = np.percentile(latency, [50, 95])
        result["neighbours_ms"] = {"p50": float(q[0]), "p95": float(q[1])}
        print(f"neighbour query through the API: p50 {q[0]:.1f} ms, p95 {q[1]:.1f} ms")

        if shutil.which("chromium") and shutil.which("chromedriver"):
            from selenium import webdriver
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            options = Options()
            for arg in ("--headless=new", "--no-sandbox", "--window-size=1200,900"):
                options.add_argument(arg)
            options.binary_location = shutil.which("chromium")
            browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                       options=options)
            paints = []
            for _ in range(3):
                t = time.perf_counter()
                browser.get(base + "/")
                WebDriverWait(browser, 120).until(
                    lambda b: b.execute_script("return document.body.dataset.ready") == "1"
                )
                paints.append(time.perf_counter() - t)
                status = browser.find_element(By.ID, "status").text
            browser.quit()
            result["first_paint_seconds"] = paints
            result["map_status"] = status
            print(f"map page, navigation → all points drawn: {paints} s ({status})")

        counts = {"ok": 0, "error": 0}
        errors: list[str] = []
        stop = time.perf_counter() + args.seconds
        lock = threading.Lock()

        def client(seed: int) -> None:
            r = np.random.default_rng(seed)
            k = 0
            while time.perf_counter() < stop:
                object_id = f"obj-{int(r.integers(0, args.n)):07d}"
                url = [
                    f"{base}/api/objects/{object_id}/neighbours?k=12",
                    f"{base}/api/objects/{object_id}",
                    f"{base}/api/anomalies?limit=20",
                    f"{base}/api/map" if k % 20 == 0 else f"{base}/object/{object_id}",
                ][k % 4]
                k += 1
                try:
                    get(url, timeout=60)
                    with lock:
                        counts["ok"] += 1
                except Exception as err:  # noqa: BLE001 - every failure is counted
                    with lock:
                        counts["error"] += 1
                        errors.append(f"{url}: {err}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["concurrent"] = {"clients": args.clients, "seconds": args.seconds, **counts,
                                "first_errors": errors[:5]}
        print(f"{args.clients} clients × {args.seconds:.0f} s: {counts['ok']} answered, "
              f"{counts['error']} errors {errors[:3]}")
        result["neighbours_ms_all"] = statistics.median(latency)
    finally:
        server.terminate()
        server.wait(timeout=30)
    (args.out / "explore_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'explore_speed.json'}")


if __name__ == "__main__":
    main()
