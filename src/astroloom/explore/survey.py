"""What the explorer serves, held in memory once: the embeddings (ids, vectors, labels), a
FAISS index, the UMAP layout and anomaly scores (cached beside the embeddings), and the
dataset's objects read a row group at a time when a page asks for one — never the whole
dataset, so a survey of 100,000 objects needs its embeddings in memory, not its pixels."""

from __future__ import annotations

import hashlib
import io
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from astroloom.data.multiset import MultimodalSet, keep, read_rows
from astroloom.data.neighbours import mask_neighbours
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.discover.anomaly import LOF_RANGE, anomaly_scores
from astroloom.discover.embedding_map import umap_map
from astroloom.discover.search import SimilarityIndex
from astroloom.evaluate.embed import Embeddings, file_signature, read_embeddings
from astroloom.interpret.attribution import TokenMap
from astroloom.interpret.explain import image_map, safe_name
from astroloom.interpret.surprise import SurpriseReference, token_errors
from astroloom.model.foundation import Foundation, load_foundation
from astroloom.report.plots import plot_explanation, plot_image_rows
from astroloom.tokenize.image import mean_over_views
from astroloom.tokenize.multimodal import info_modalities


class UnknownObject(KeyError):
    """An id the survey does not hold (also every path-like or malformed id)."""


class RowReader:
    """One object's row from a dataset's shards: the ids are read once (one column), rows
    are read by row group, the last few row groups kept."""

    def __init__(self, directory: str | Path, modalities: list[str], keep: int = 8) -> None:
        self.directory = Path(directory)
        self.info = DatasetInfo.load(self.directory)
        self.modalities = modalities
        self.where: dict[str, tuple[Path, int, int]] = {}
        for name in self.info.shards:
            path = self.directory / name
            if not path.is_file():
                raise DataError(f"shard {path} listed in dataset.json does not exist")
            meta = pq.ParquetFile(path).metadata
            ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
            start = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                for k in range(n):
                    self.where[str(ids[start + k])] = (path, g, k)
                start += n
        self.cache: OrderedDict[tuple[Path, int], MultimodalSet] = OrderedDict()
        self.keep = keep

    def row(self, object_id: str) -> tuple[MultimodalSet, int]:
        if object_id not in self.where:
            raise UnknownObject(object_id)
        path, group, k = self.where[object_id]
        key = (path, group)
        if key not in self.cache:
            table = pq.ParquetFile(path).read_row_group(group)
            self.cache[key] = read_rows(table, path, self.info, self.modalities)
            while len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return self.cache[key], k


@dataclass
class Layout:
    coords: np.ndarray  # (N, 2)
    anomaly: np.ndarray  # (N,) higher = more unusual
    method: str = "lof-range"  # how the anomaly score was made (discover/anomaly.py)


def anomaly_method(n_objects: int) -> str:
    """The explorer's anomaly score: the largest local outlier factor over 10–50 neighbours,
    the bench's best for the foundation's embeddings (reference survey: ROC-AUC 0.986 and
    all ten most unusual rare, against 0.913 and six for the isolation forest); a survey too
    small for 50 neighbours gets the isolation forest."""
    return "lof-range" if n_objects > LOF_RANGE[-1] else "iforest"


def cached_layout(path: Path, emb: Embeddings, seed: int = 0) -> Layout:
    """UMAP coordinates and anomaly scores of ``emb``, computed once and stored beside the
    embeddings file (``NAME.explore.npz``), recomputed when the embeddings change; a cache
    made with another anomaly method keeps its map and gets new scores."""
    cache = path.with_name(path.name + ".explore.npz")
    signature = file_signature(path)
    method = anomaly_method(len(emb.ids))
    coords = None
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["signature"]) == signature and len(saved["coords"]) == len(emb.ids):
                if "method" in saved and str(saved["method"]) == method:
                    return Layout(saved["coords"], saved["anomaly"], method)
                coords = saved["coords"]  # only the anomaly score is out of date
    if coords is None:
        coords = umap_map(emb.vectors, seed=seed).coords
    anomaly = anomaly_scores(emb.vectors, method, seed=seed).astype(np.float32)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(
        tmp,
        coords=coords,
        anomaly=anomaly,
        signature=np.array(signature),
        method=np.array(method),
    )
    tmp.replace(cache)
    return Layout(coords, anomaly, method)


def described_data(emb: Embeddings) -> Path | None:
    """The dataset an embeddings file says it was made from (None where it records none)."""
    data = emb.meta.get("data")
    return Path(data).resolve() if data else None


def embeddings_for(home: Path, data: str | Path) -> Path:
    """The explorer's own embeddings file of ``data`` in ``home``: ``embeddings-image.parquet``
    when it is missing or describes this dataset; another dataset's gets a file of its own
    (named by its folder and path), so that exploring a second survey with the same model
    never shows the first one's embeddings."""
    plain = home / "embeddings-image.parquet"
    if not plain.is_file() or described_data(read_embeddings(plain)) == Path(data).resolve():
        return plain
    where = Path(data).resolve()
    tag = hashlib.sha256(str(where).encode()).hexdigest()[:8]
    return home / f"embeddings-image-{safe_name(where.name)}-{tag}.parquet"


class ExplorerSurvey:
    """Embeddings, index, layout and objects of one survey, and the model that embedded it
    (to embed uploads the same way)."""

    def __init__(
        self,
        foundation: Foundation,
        data: str | Path,
        embeddings: str | Path,
        layout: Layout | None = None,
        denoiser: str | Path | None = None,
    ) -> None:
        self.foundation = foundation
        self.embeddings_path = Path(embeddings)
        self.emb = read_embeddings(self.embeddings_path)
        made_from = described_data(self.emb)
        if made_from is not None and made_from != Path(data).resolve():
            raise DataError(
                f"{self.embeddings_path} describes the dataset {made_from}, not {data}: embed "
                "this one (`astroloom embed RUN DATA`) or leave out --embeddings"
            )
        self.ids = np.asarray([str(i) for i in self.emb.ids], dtype=object)
        self.position = {i: k for k, i in enumerate(self.ids)}
        self.index = SimilarityIndex(self.emb.vectors, self.ids)
        self.layout = layout or cached_layout(self.embeddings_path, self.emb)
        # Every modality the data has: a denoiser's conditioning may need more than the
        # explorer's model reads.
        self.rows = RowReader(data, info_modalities(DatasetInfo.load(data)))
        self.denoiser_dir = None if denoiser is None else Path(denoiser)
        self._generator = None
        self.info = self.rows.info
        self.layer = self.emb.meta.get("layer")
        self.pool = self.emb.meta.get("pool", "meanstd")
        self.orientations = self.emb.meta.get("orientations", 1)
        self.zooms = self.emb.meta.get("zooms", [1.0])  # files before zooms: as given
        self.mask_neighbours = self.emb.meta.get("mask_neighbours", False)
        self.image_scale = self.info.normalisation.get("image", {}).get("scale")
        self._reference: SurpriseReference | None = None

    # ------------------------------------------------------------------ objects
    def check(self, object_id: str) -> int:
        """The embedding row of ``object_id``; :class:`UnknownObject` for anything else."""
        if object_id not in self.position:
            raise UnknownObject(object_id)
        return self.position[object_id]

    def labels(self, object_id: str) -> dict:
        k = self.check(object_id)
        out = {}
        for name, values in self.emb.labels.items():
            v = values[k]
            if isinstance(v, float | np.floating):
                out[name] = None if not np.isfinite(v) else float(v)
            else:
                out[name] = None if v is None else str(v)
        return out

    def observation(self, object_id: str) -> dict:
        """The object's modalities as arrays (image, spectrum, light curve)."""
        self.check(object_id)
        rows, k = self.rows.row(object_id)
        out: dict = {}
        if rows.present.get("image", np.zeros(len(rows.ids), bool))[k]:
            out["image"] = rows.arrays["image"][k]
        if rows.present.get("spectrum", np.zeros(len(rows.ids), bool))[k]:
            out["spectrum"] = rows.arrays["spectrum_flux"][k]
            out["wavelength"] = self.foundation.tokenizer["spectrum"].wavelength
        if rows.present.get("lightcurve", np.zeros(len(rows.ids), bool))[k]:
            out["lightcurve"] = {
                key: np.asarray(rows.curves[f"lc_{key}"][k]) for key in ("time", "mag", "band")
            }
        return out

    def describe(self, object_id: str) -> dict:
        k = self.check(object_id)
        obs = self.observation(object_id)
        return {
            "id": object_id,
            "labels": self.labels(object_id),
            "anomaly_score": float(self.layout.anomaly[k]),
            "anomaly_rank": int((self.layout.anomaly > self.layout.anomaly[k]).sum()) + 1,
            "modalities": sorted(m for m in obs if m != "wavelength"),
            "map": [float(self.layout.coords[k, 0]), float(self.layout.coords[k, 1])],
        }

    def surprise_png(self, object_id: str, reference_size: int = 256) -> bytes:
        """The object's surprise map beside its image, as a PNG; the typical error of each
        patch is measured once, on the first ``reference_size`` objects with an image."""
        obs = self.observation(object_id)
        if "image" not in obs:
            raise DataError(f"{object_id!r} has no image to map")
        model, tok = self.foundation.model, self.foundation.tokenizer.image
        if self._reference is None:
            sample = []
            for other in self.ids:
                image = self.observation(str(other)).get("image")
                if image is not None:
                    sample.append(image)
                if len(sample) >= reference_size:
                    break
            errors = token_errors(model, {"image": tok.tokens(torch.from_numpy(np.stack(sample)))})
            self._reference = SurpriseReference.from_errors(errors)
        one = {"image": tok.tokens(torch.from_numpy(obs["image"][None].astype(np.float32)))}
        surprise = self._reference.surprise(token_errors(model, one))["image"][0]
        tm = TokenMap(
            object_id, "surprise", "log(prediction error / typical error)", {"image": surprise}
        )
        side = obs["image"].shape[-1]
        drawn = {"image": image_map(tm, tok.patch_size, tok.n_bands, side)}
        buffer = io.BytesIO()
        plot_explanation([(tm, drawn, {"image": obs["image"]})], buffer, self.image_scale)
        return buffer.getvalue()

    def generate(self, object_id: str, mode: str, n: int = 4, seed: int = 0) -> np.ndarray:
        """Galaxies drawn by the diffusion decoder for one object, in the survey's flux unit:
        ``image`` — like this one (conditioned on its image's embedding); ``others`` — the
        galaxy that has this object's spectrum and photometry. ``(n, C, H, W)``."""
        from astroloom.generate.denoiser import load_denoiser
        from astroloom.generate.jobs import generate_mode

        if self.denoiser_dir is None:
            raise DataError("no denoiser: start the explorer with --denoiser DIR")
        if self._generator is None:
            den = load_denoiser(self.denoiser_dir)
            self._generator = (den, load_foundation(den.meta["foundation_run"]))
        den, foundation = self._generator
        if mode not in den.meta["sources"] or mode not in ("image", "others"):
            raise DataError(
                f"mode must be image or others, among the denoiser's {den.meta['sources']}"
            )
        self.check(object_id)
        rows, k = self.rows.row(object_id)
        chosen = keep(rows, np.array([k]))
        return generate_mode(den, foundation, chosen, mode, n, seed=seed)

    def generate_png(self, object_id: str, mode: str, n: int = 4) -> bytes:
        """The object (top row) and ``n`` galaxies drawn for it."""
        flux = self.generate(object_id, mode, n)
        obs = self.observation(object_id)
        real = obs.get("image", np.full_like(flux[0], np.nan))
        buffer = io.BytesIO()
        top = np.full_like(flux, np.nan)
        top[0] = real
        titles = ["this object"] + [""] * (len(flux) - 1)
        plot_image_rows(
            [("real", top), (f"drawn ({mode})", flux)],
            self._generator[0].meta["scale"],
            buffer,
            titles=titles,
        )
        return buffer.getvalue()

    # ------------------------------------------------------------------ search
    def neighbours(self, object_id: str, k: int = 12) -> list[dict]:
        self.check(object_id)
        ids, dist = self.index.query(object_id, k)
        return [{"id": str(i), "distance": float(d)} for i, d in zip(ids, dist, strict=True)]

    def nearest_to(self, vectors: np.ndarray, k: int = 12) -> list[list[dict]]:
        unit = np.ascontiguousarray(vectors, dtype=np.float32)
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        sims, hits = self.index.index.search(unit, min(k, len(self.ids)))
        return [
            [
                {"id": str(self.ids[h]), "distance": float(1 - s)}
                for h, s in zip(hr, sr, strict=True)
            ]
            for hr, sr in zip(hits, sims, strict=True)
        ]

    def embed_cutouts(self, cutouts: list) -> np.ndarray:
        """Embed uploaded cutouts (:class:`~astroloom.explore.uploads.Cutout`) the way the
        survey was embedded (its turns, closer views and masked neighbours), each with the
        zero point and pixel scale it states."""
        tok = self.foundation.tokenizer.image
        out = []
        for c in cutouts:
            pixels = c.image[None]
            image = torch.from_numpy(mask_neighbours(pixels) if self.mask_neighbours else pixels)

            def view(zoom: float, c=c, image=image) -> np.ndarray:
                tokens = tok.tokens(
                    image, pixel_scale=c.pixel_scale, zero_point=c.zero_point, zoom=zoom
                )
                return self.foundation.embed(
                    {"image": tokens}, self.layer, self.pool, orientations=self.orientations
                )

            out.append(mean_over_views(self.zooms, view))
        return np.concatenate(out)

    def rank(self, positive: list[str], negative: list[str], k: int = 24) -> list[dict]:
        """ "More like these, fewer like those": a logistic probe trained on the clicked
        objects (with, when no negatives are given, a random draw of the survey standing
        in for them) ranks every object; the top ``k`` not already clicked."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        if not positive:
            raise DataError("give at least one positive example")
        pos = [self.check(i) for i in positive]
        neg = [self.check(i) for i in negative]
        if not neg:
            rng = np.random.default_rng(0)
            pool = np.setdiff1d(np.arange(len(self.ids)), pos)
            neg = list(rng.choice(pool, min(len(pool), max(20, 10 * len(pos))), replace=False))
        x = self.emb.vectors
        scaler = StandardScaler().fit(x[pos + neg])
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        probe = LogisticRegression(max_iter=1000, class_weight="balanced")
        probe.fit(scaler.transform(x[pos + neg]), y)
        score = probe.decision_function(scaler.transform(x))
        clicked = set(pos) | set(self.position[i] for i in negative)
        order = [int(i) for i in np.argsort(-score) if int(i) not in clicked][:k]
        return [{"id": str(self.ids[i]), "score": float(score[i])} for i in order]

    def anomalies(
        self,
        limit: int = 100,
        label: str | None = None,
        value: str | None = None,
        min_score: float | None = None,
    ) -> list[dict]:
        order = np.argsort(-self.layout.anomaly)
        out = []
        for i in order:
            if min_score is not None and self.layout.anomaly[i] < min_score:
                break
            if label is not None:
                if label not in self.emb.labels:
                    raise DataError(f"no label {label!r}; labels: {sorted(self.emb.labels)}")
                if value is not None and str(self.emb.labels[label][i]) != value:
                    continue
            out.append({"id": str(self.ids[i]), "score": float(self.layout.anomaly[i])})
            if len(out) >= limit:
                break
        return out

    @property
    def colourings(self) -> list[str]:
        return ["anomaly score", *sorted(self.emb.labels)]

    def colour_values(self, color: str | None) -> np.ndarray:
        """The values a map is coloured by: the anomaly score (``None``) or a label's
        column (float, NaN where missing; object for a class label)."""
        if color in (None, "anomaly score"):
            return self.layout.anomaly
        if color in self.emb.labels:
            return self.emb.labels[color]
        raise DataError(f"no label {color!r}; labels: {sorted(self.emb.labels)}")

    def map_payload(self, color: str | None = None) -> dict:
        values = self.colour_values(color)
        if values.dtype == object:
            listed = [None if v is None else str(v) for v in values]
        elif color in (None, "anomaly score"):
            listed = np.round(values, 4).tolist()
        else:
            listed = [None if not np.isfinite(v) else float(v) for v in values]
        return {
            "ids": self.ids.tolist(),
            "x": np.round(self.layout.coords[:, 0], 4).tolist(),
            "y": np.round(self.layout.coords[:, 1], 4).tolist(),
            "labels": self.colourings,
            "color": color,
            "values": listed,
        }

    def map_packed(self, color: str | None = None) -> bytes:
        """The map for the page, packed for a browser to read without parsing numbers: a
        little-endian uint32 header length, a JSON header (n, labels, colour, categories),
        padding to 4 bytes, then float32 x, y and colour values (NaN where missing; codes
        into ``categories`` for a categorical label) and the ids joined by newlines."""
        values = self.colour_values(color)
        numeric = values.dtype != object
        categories: list[str] = []
        if numeric:
            column = values.astype(np.float32)
        else:
            categories = sorted({str(v) for v in values if v is not None})
            code = {c: float(k) for k, c in enumerate(categories)}
            column = np.array([np.nan if v is None else code[str(v)] for v in values], np.float32)
        header = json.dumps(
            {
                "n": len(self.ids),
                "labels": self.colourings,
                "color": color,
                "numeric": numeric,
                "categories": categories,
            }
        ).encode()
        header += b" " * (-len(header) % 4)
        coords = self.layout.coords.astype("<f4")
        return b"".join(
            [
                np.uint32(len(header)).astype("<u4").tobytes(),
                header,
                np.ascontiguousarray(coords[:, 0]).tobytes(),
                np.ascontiguousarray(coords[:, 1]).tobytes(),
                column.astype("<f4").tobytes(),
                "\n".join(map(str, self.ids)).encode(),
            ]
        )
