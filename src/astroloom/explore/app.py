"""``astroloom explore``: a local web app over a survey's embeddings (FastAPI on uvicorn).

Pages: the map (``/``), an object (``/object/{id}``), anomalies (``/anomalies``), search by
example (``/search``). JSON API, documented at ``/docs`` and in the README:

* ``GET /api/map?color=LABEL`` — ids, UMAP x/y, the colour values, the label names
* ``GET /api/map.bin?color=LABEL`` — the same packed for a browser: a uint32 header length,
  a JSON header, float32 x, y and values (codes into ``categories`` for a class label),
  then the ids joined by newlines
* ``GET /api/objects/{id}`` — labels, anomaly score and rank, modalities, bands
* ``GET /api/objects/{id}/image.png?band=rgb|g|…&stretch=asinh|linear|log&size=128``,
  ``/spectrum.png``, ``/lightcurve.png`` (raw and folded), ``/explain.png?method=surprise``
* ``GET /api/objects/{id}/neighbours?k=12`` — FAISS cosine neighbours with distances
* ``POST /api/search`` — multipart ``files`` (FITS, PNG, JPEG; ≤ 20 MB, ≤ 4096² pixels each):
  embedded with the survey's model, their neighbours
* ``POST /api/rank`` — ``{"positive": [ids], "negative": [ids]}``: a probe trained on the
  fly ranks the survey ("more like these, fewer like those")
* ``GET /api/anomalies?limit=100&label=L&value=V&min_score=S`` — the ranked list
* ``GET /api/objects/{id}/generate.png?mode=image|others&n=4`` — with ``--denoiser``:
  galaxies drawn like this one (``image``), or the galaxy that has this object's spectrum
  and photometry (``others``), beside the real one
* ``GET /api/info`` — object count, labels, how the embeddings were made, generation on/off

Objects are addressed by id only; an id the survey does not hold — a path, ``..``, anything
— is a 404. The server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import threading
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from astroloom.data.schema import DataError
from astroloom.explore import pages
from astroloom.explore.pictures import image_png, lightcurve_png, spectrum_png
from astroloom.explore.survey import ExplorerSurvey, UnknownObject
from astroloom.explore.uploads import MAX_BYTES, UploadError, parse_cutout

MAX_FILES = 16


class RankRequest(BaseModel):
    positive: list[str]
    negative: list[str] = []
    k: int = 24


SKYMAP_JS = Path(str(files("astroloom.explore") / "static" / "skymap.js"))


def create_app(survey: ExplorerSurvey) -> FastAPI:
    app = FastAPI(
        title="astroloom explore",
        description="A survey's embeddings: map, objects, neighbours, search, anomalies.",
    )
    lock = threading.Lock()  # the model and matplotlib are used by one request at a time
    png = {"media_type": "image/png"}

    def known(object_id: str) -> str:
        try:
            survey.check(object_id)
        except UnknownObject:
            raise HTTPException(404, f"no object {object_id!r} in this survey") from None
        return object_id

    @app.exception_handler(DataError)
    async def data_error(_: Request, err: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse)
    def map_page() -> str:
        return pages.map_page()

    @app.get("/object/{object_id:path}", response_class=HTMLResponse)
    def object_page(object_id: str) -> str:
        return pages.object_page(known(object_id))

    @app.get("/anomalies", response_class=HTMLResponse)
    def anomalies_page() -> str:
        return pages.anomalies_page()

    @app.get("/search", response_class=HTMLResponse)
    def search_page() -> str:
        return pages.search_page()

    @app.get("/static/skymap.js")
    def skymap() -> FileResponse:
        return FileResponse(SKYMAP_JS, media_type="text/javascript")

    # ------------------------------------------------------------------ API
    # The default colouring is ready before the first visitor asks for it.
    maps: dict[str | None, bytes] = {}

    @app.get("/api/map")
    def api_map(color: str | None = None) -> Response:
        # 100,000 points are a few MB of JSON: serialised once per colouring, not per
        # request (FastAPI's generic encoder took most of a cold page load).
        if color not in maps:
            maps[color] = json.dumps(survey.map_payload(color)).encode()
        return Response(maps[color], media_type="application/json")

    packed: dict[str | None, bytes] = {None: survey.map_packed(None)}  # before any visit

    @app.get("/api/map.bin")
    def api_map_packed(color: str | None = None) -> Response:
        # What the map page reads: float32 columns a browser views without parsing.
        if color not in packed:
            packed[color] = survey.map_packed(color)
        return Response(packed[color], media_type="application/octet-stream")

    @app.get("/api/anomalies")
    def api_anomalies(
        limit: int = 100,
        label: str | None = None,
        value: str | None = None,
        min_score: float | None = None,
    ) -> dict:
        limit = max(1, min(limit, 10_000))
        return {
            "anomalies": survey.anomalies(limit, label, value, min_score),
            "method": survey.layout.method,
        }

    @app.post("/api/rank")
    def api_rank(request: RankRequest) -> dict:
        for object_id in [*request.positive, *request.negative]:
            known(object_id)
        k = max(1, min(request.k, 500))
        return {"ranked": survey.rank(request.positive, request.negative, k)}

    @app.post("/api/search")
    async def api_search(request: Request, files: list[UploadFile]) -> dict:
        size = request.headers.get("content-length")
        if size is not None and int(size) > MAX_FILES * MAX_BYTES:
            raise HTTPException(413, f"the upload is larger than {MAX_FILES} × 20 MB")
        if len(files) > MAX_FILES:
            raise HTTPException(413, f"at most {MAX_FILES} files per search")
        cutouts, names = [], []
        tok = survey.foundation.tokenizer.image
        side = survey.foundation.model.cfg.image_size
        for upload in files:
            raw = await upload.read(MAX_BYTES + 1)
            name = Path(upload.filename or "upload").name
            try:
                cutouts.append(parse_cutout(raw, name, tok.n_bands, side))
            except UploadError as err:
                raise HTTPException(err.status, str(err)) from None
            names.append(name)
        with lock:
            vectors = survey.embed_cutouts(cutouts)
        found = survey.nearest_to(vectors, 12)
        return {
            "results": [
                {"name": n, "neighbours": hits} for n, hits in zip(names, found, strict=True)
            ]
        }

    @app.get("/api/objects/{object_id:path}/neighbours")
    def api_neighbours(object_id: str, k: int = 12) -> dict:
        k = max(1, min(k, 200))
        return {"id": object_id, "neighbours": survey.neighbours(known(object_id), k)}

    @app.get("/api/objects/{object_id:path}/image.png")
    def api_image(
        object_id: str, band: str = "rgb", stretch: str = "asinh", size: int = 128
    ) -> Response:
        obs = survey.observation(known(object_id))
        if "image" not in obs:
            raise HTTPException(404, f"{object_id!r} has no image")
        size = max(16, min(size, 512))
        try:
            data = image_png(
                obs["image"], survey.image_scale, band, survey.info.image.bands, stretch, size
            )
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return Response(data, **png)

    @app.get("/api/objects/{object_id:path}/spectrum.png")
    def api_spectrum(object_id: str) -> Response:
        obs = survey.observation(known(object_id))
        if "spectrum" not in obs:
            raise HTTPException(404, f"{object_id!r} has no spectrum")
        unit = survey.foundation.tokenizer["spectrum"].flux_unit
        with lock:
            return Response(spectrum_png(obs["wavelength"], obs["spectrum"], unit), **png)

    @app.get("/api/objects/{object_id:path}/lightcurve.png")
    def api_lightcurve(object_id: str) -> Response:
        obs = survey.observation(known(object_id))
        if "lightcurve" not in obs:
            raise HTTPException(404, f"{object_id!r} has no light curve")
        period = survey.labels(object_id).get("period")
        bands = survey.foundation.tokenizer["lightcurve"].bands
        with lock:
            return Response(lightcurve_png(obs["lightcurve"], period, bands), **png)

    @app.get("/api/objects/{object_id:path}/explain.png")
    def api_explain(object_id: str, method: str = "surprise") -> Response:
        known(object_id)
        if method != "surprise":
            raise HTTPException(
                422, "the explorer draws surprise maps; `astroloom explain` draws the others"
            )
        with lock:
            return Response(survey.surprise_png(object_id), **png)

    @app.get("/api/objects/{object_id:path}/generate.png")
    def api_generate(object_id: str, mode: str = "image", n: int = 4) -> Response:
        known(object_id)
        if survey.denoiser_dir is None:
            raise HTTPException(404, "no denoiser: start the explorer with --denoiser DIR")
        n = max(1, min(n, 8))
        with lock:
            return Response(survey.generate_png(object_id, mode, n), **png)

    @app.get("/api/info")
    def api_info() -> dict:
        return {
            "n_objects": len(survey.ids),
            "labels": sorted(survey.emb.labels),
            "embeddings": survey.emb.meta,
            "generation": survey.denoiser_dir is not None,
        }

    @app.get("/api/objects/{object_id:path}")
    def api_object(object_id: str) -> dict:
        out = survey.describe(known(object_id))
        out["bands"] = list(survey.info.image.bands or [])
        return out

    return app
