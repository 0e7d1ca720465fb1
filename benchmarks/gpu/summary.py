"""The GPU check's figures, from the metrics and impact files it gathered."""

import json
import sys
from pathlib import Path

import numpy as np

R = Path(sys.argv[1])


def rows(name):
    p = R / name
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def speed(rs):
    t = [r["tokens_per_s"] for r in rs if "tokens_per_s" in r][2:]
    m = [r["mfu"] for r in rs if "mfu" in r][2:]
    pk = [r["peak_flops"] for r in rs if "peak_flops" in r]
    return {
        "tokens_per_s_median": float(np.median(t)) if t else None,
        "mfu_median": float(np.median(m)) if m else None,
        "peak_flops": pk[0] if pk else None,
    }


out = {}
a = rows("A-metrics.jsonl")
if a:
    out["A"] = {
        "first_loss": a[0]["loss"],
        "last_loss": a[-1]["loss"],
        "val_losses": [r["val_loss"] for r in a if "val_loss" in r],
        **speed(a),
        "elapsed_s": a[-1].get("elapsed_s"),
    }
resumed = R / "resume.json"
if resumed.exists():
    out["resume"] = json.loads(resumed.read_text())
for c_ in ("false", "true"):
    d = rows(f"D-{c_}-metrics.jsonl")
    if d:
        out[f"small_compile_{c_}"] = {
            **speed(d),
            "last_loss": d[-1]["loss"],
            "elapsed_s": d[-1].get("elapsed_s"),
        }
for f in sorted(R.glob("*impact.json")):
    i = json.loads(f.read_text())
    out[f.stem] = {
        k: i.get(k)
        for k in (
            "device",
            "wall_time_s",
            "energy_kwh",
            "energy_method",
            "energy_measured_how",
            "energy_measured_kwh",
        )
    }
print(json.dumps(out, indent=1))
