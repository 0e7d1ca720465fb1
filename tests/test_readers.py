"""Each reader round-trips a small file it writes itself; bad input is named or logged."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from astroloom.data.multiset import load_multimodal_set
from astroloom.data.readers import (
    BadObject,
    ingest,
    read_fits_folder,
    read_fits_image,
    read_hdf5,
    read_image_folder,
    read_light_curves,
    read_parquet,
    read_sdss_spectra,
)
from astroloom.data.schema import DataError
from astroloom.data.shards import load_image_set


@pytest.fixture
def cutouts(tmp_path, mock_dir):
    data = load_image_set(mock_dir, limit=6)
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for obj, image in zip(data.ids[:6], data.images[:6], strict=True):
        fits.PrimaryHDU(image).writeto(folder / f"{obj}.fits")
    catalog = tmp_path / "catalog.csv"
    Table({"id": data.ids[:6].astype(str), "mag_r": data.labels["mag_r"][:6]}).write(catalog)
    return folder, catalog, data


def test_fits_folder_round_trip(cutouts, tmp_path):
    folder, catalog, data = cutouts
    report = ingest(
        read_fits_folder(folder, catalog),
        tmp_path / "out",
        "mine",
        bands=["g", "r", "z"],
        pixel_scale=0.262,
        progress=False,
    )
    back = load_image_set(tmp_path / "out")
    order = np.argsort(back.ids)
    np.testing.assert_array_equal(back.images[order], data.images[:6][np.argsort(data.ids[:6])])
    np.testing.assert_allclose(np.sort(back.labels["mag_r"]), np.sort(data.labels["mag_r"][:6]))
    assert report.written == 6 and report.skipped == []
    assert back.info.image.bands == ["g", "r", "z"]


def test_corrupt_fits_is_named_or_skipped_and_logged(cutouts, tmp_path):
    folder, catalog, _ = cutouts
    victim = sorted(folder.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:3000])  # truncated
    with pytest.raises(BadObject, match=rf"{victim.name}.*{victim.stem}.*not a readable FITS"):
        ingest(read_fits_folder(folder, catalog), tmp_path / "a", "mine", progress=False)
    report = ingest(
        read_fits_folder(folder, catalog), tmp_path / "b", "mine", skip_bad=True, progress=False
    )
    assert report.written == 5 and len(report.skipped) == 1
    logged = [json.loads(x) for x in (tmp_path / "b" / "skipped.jsonl").read_text().splitlines()]
    assert logged[0]["id"] == victim.stem and "FITS" in logged[0]["reason"]


def test_missing_id_duplicates_and_nan_pixels(cutouts, tmp_path):
    folder, catalog, data = cutouts
    fits.PrimaryHDU(data.images[0]).writeto(folder / "stranger.fits")
    with pytest.raises(BadObject, match="stranger.*not in the catalogue"):
        ingest(read_fits_folder(folder, catalog), tmp_path / "a", "x", progress=False)
    (folder / "stranger.fits").unlink()
    dup = tmp_path / "dup.csv"
    Table({"id": ["a", "a"], "v": [1.0, 2.0]}).write(dup)
    with pytest.raises(DataError, match="repeats ids"):
        list(read_fits_folder(folder, dup))
    holes = data.images[1].copy()
    holes[:, :5, :5] = np.inf
    path = sorted(folder.iterdir())[1]
    fits.PrimaryHDU(holes).writeto(path, overwrite=True)
    report = ingest(read_fits_folder(folder, catalog), tmp_path / "c", "x", progress=False)
    back = load_image_set(tmp_path / "c")
    assert int(np.isnan(back.images).sum()) == 3 * 25  # inf became masked NaN, nothing else
    # The summary counts what was masked: one object, 75 pixels, recorded in dataset.json.
    assert (report.masked_objects, report.masked_pixels) == (1, 75)
    assert back.info.provenance["masked_pixels"] == 75
    fits.PrimaryHDU(np.full((3, 64, 64), np.nan, np.float32)).writeto(path, overwrite=True)
    with pytest.raises(BadObject, match="NaN/inf"):
        ingest(read_fits_folder(folder, catalog), tmp_path / "d", "x", progress=False)


def test_wrong_shape_is_refused(cutouts, tmp_path):
    folder, catalog, data = cutouts
    path = sorted(folder.iterdir())[3]
    fits.PrimaryHDU(data.images[3][:, :32, :32]).writeto(path, overwrite=True)
    with pytest.raises(BadObject, match=r"shape \(3, 32, 32\) differs"):
        ingest(read_fits_folder(folder, catalog), tmp_path / "a", "x", progress=False)


def test_fits_image_detects_sources_with_sky_positions(tmp_path):
    import galsim
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [128.5, 128.5]
    wcs.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    image = galsim.ImageF(256, 256, scale=0.262)
    positions = [(60.0, 70.0), (180.0, 120.0), (100.0, 200.0)]
    for x, y in positions:
        stamp = galsim.Exponential(half_light_radius=0.8, flux=2000.0).drawImage(
            scale=0.262, nx=41, ny=41, center=galsim.PositionI(int(x) + 1, int(y) + 1)
        )
        image[stamp.bounds & image.bounds] += stamp[stamp.bounds & image.bounds]
    noisy = image.array + np.random.default_rng(0).normal(0, 1.0, image.array.shape)
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(noisy.astype(np.float32), header=wcs.to_header()).writeto(path)
    found = list(read_fits_image(path, stamp=32))
    assert len(found) == 3
    truth = wcs.pixel_to_world([p[0] for p in positions], [p[1] for p in positions])
    for obs in found:
        sep = (
            np.min(
                np.hypot(
                    (truth.ra.deg - obs.labels["ra"]) * np.cos(np.radians(2.0)),
                    truth.dec.deg - obs.labels["dec"],
                )
            )
            * 3600
        )
        assert sep < 0.5  # arcsec
        assert obs.modalities["image"].shape == (1, 32, 32)


def test_hdf5_galaxy10_layout(tmp_path):
    import h5py

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "Galaxy10_DECals.h5"
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["ans"] = np.array([0, 3, 7, 9], np.uint8)
        f["redshift"] = np.array([0.01, 0.05, 0.1, 0.2])
    ingest(read_hdf5(path), tmp_path / "out", "galaxy10", bands=["g", "r", "z"], progress=False)
    back = load_image_set(tmp_path / "out")
    np.testing.assert_array_equal(back.images[2], np.moveaxis(images[2], -1, 0).astype(np.float32))
    assert list(back.labels["ans"]) == [0, 3, 7, 9]
    with pytest.raises(DataError, match="not a readable HDF5"):
        list(read_hdf5(tmp_path / "out" / "dataset.json"))
    images[1] = 0
    with h5py.File(path, "a") as f:
        del f["images"]
        f["images"] = np.concatenate([images, images[:1]])  # one more image than labels
    with pytest.raises(
        DataError, match=r"label arrays \{'ans': 4, 'redshift': 4\} do not match the 5"
    ):
        list(read_hdf5(path))


def test_png_folder_with_labels(tmp_path):
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    rng = np.random.default_rng(2)
    pixels = {}
    for name in ("a", "b"):
        pixels[name] = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels[name]).save(folder / f"{name}.png")
    labels = tmp_path / "labels.csv"
    Table({"id": ["a", "b"], "spiral": [1, 0]}).write(labels)
    ingest(read_image_folder(folder, labels), tmp_path / "out", "pngs", progress=False)
    back = load_image_set(tmp_path / "out")
    i = list(back.ids).index("b")
    # Bands bluest first: the picture's blue channel is band 0, its red channel band 2.
    bgr = np.moveaxis(pixels["b"], -1, 0)[::-1] / 255.0
    np.testing.assert_allclose(back.images[i], bgr, atol=1e-6)
    assert back.labels["spiral"][i] == 0
    assert back.info.image.known_zero_point() is None  # an 8-bit picture: unit unknown
    (folder / "c.png").write_bytes(b"not a png")
    with pytest.raises(BadObject, match="c.png.*not a readable image"):
        ingest(read_image_folder(folder, labels), tmp_path / "x", "pngs", progress=False)
    with pytest.raises(DataError, match="unknown flux unit 'furlong'"):
        ingest(read_image_folder(folder, labels), tmp_path / "y", "pngs", unit="furlong")


def test_a_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    """A picture whose few bytes unpack to more pixels than Pillow will safely read (a
    malicious upload) is a bad object named with its file, not a traceback; --skip-bad
    keeps the others."""
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "small.png")
    Image.new("RGB", (64, 64)).save(folder / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64² > 2 × 1000: Pillow refuses
    with pytest.raises(BadObject, match="bomb.png.*too many pixels"):
        ingest(read_image_folder(folder), tmp_path / "x", "pngs", progress=False)
    report = ingest(read_image_folder(folder), tmp_path / "y", "pngs", skip_bad=True,
                    progress=False)  # fmt: skip
    assert load_image_set(tmp_path / "y").ids.tolist() == ["small"]
    assert len(report.skipped) == 1 and "too many pixels" in str(report.skipped[0])


def test_pictures_of_any_size_are_resampled_to_one(tmp_path):
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    y, x = np.mgrid[:64, :64] - 31.5
    # A galaxy-like picture: a red core in a bluer, flattened disc.
    core, disc = np.exp(-(x**2 + y**2) / 18), np.exp(-(x**2 / 150 + y**2 / 60))
    small = (
        255
        * np.stack([0.8 * core + 0.2 * disc, 0.5 * core + 0.4 * disc, 0.2 * core + 0.7 * disc], -1)
    ).astype(np.uint8)
    smooth = np.kron(small, np.ones((2, 2, 1), np.uint8))  # the same picture at 128 px
    Image.fromarray(small).save(folder / "a.png")
    Image.fromarray(smooth).save(folder / "b.png")
    # As they are, two sizes cannot share one dataset: the shape is refused by name.
    with pytest.raises(DataError, match="differs from the first object's"):
        ingest(read_image_folder(folder), tmp_path / "as-is", "pngs", progress=False)
    ingest(read_image_folder(folder, size=64), tmp_path / "out", "pngs", progress=False)
    back = load_image_set(tmp_path / "out")
    assert back.images.shape == (2, 3, 64, 64)
    a, b = (back.images[list(back.ids).index(k)] for k in ("a", "b"))
    # The 128-px copy comes back as the 64-px picture it was made from, to the resampling.
    assert np.abs(a - b).max() < 0.03 and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
    Image.fromarray(small[:, :48]).save(folder / "c.png")
    with pytest.raises(BadObject, match="48×64 is not square"):
        ingest(read_image_folder(folder, size=64), tmp_path / "x", "pngs", progress=False)
    with pytest.raises(DataError, match="between 8 and 1024"):
        ingest(read_image_folder(folder, size=4), tmp_path / "y", "pngs", progress=False)
    # From the command line; --size with a format that is not pictures is refused.
    from typer.testing import CliRunner

    from astroloom.cli import app

    (folder / "c.png").unlink()
    args = ["data", "ingest", "images", str(folder), "--out", str(tmp_path / "cli"), "--size", "32"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert load_image_set(tmp_path / "cli").images.shape == (2, 3, 32, 32)
    args = ["data", "ingest", "hdf5", str(folder), "--out", str(tmp_path / "h"), "--size", "32"]
    wrong = CliRunner().invoke(app, args)
    assert wrong.exit_code != 0 and "--size resamples pictures" in wrong.output


def test_colour_channels_follow_the_bands_wavelengths():
    from astroloom.data.readers import channel_order

    # RGB index per band: bluest band from B (2), reddest from R (0), whatever the listing.
    assert channel_order(["g", "r", "z"]) == [2, 1, 0]
    assert channel_order(["z", "r", "g"]) == [0, 1, 2]
    assert channel_order(["g", "i", "r"]) == [2, 0, 1]
    assert channel_order(["blue", "green", "red"]) == [2, 1, 0]  # unknown names: as listed


def test_parquet_and_saved_hugging_face_dataset(tmp_path):
    import datasets

    rng = np.random.default_rng(3)
    images = rng.normal(size=(5, 2, 8, 8)).astype(np.float32)
    table = pa.table(
        {
            "id": [f"o{i}" for i in range(5)],
            "image": [im.ravel().tolist() for im in images],
            "z": np.linspace(0, 1, 5),
        }
    )
    pq.write_table(table, tmp_path / "mine.parquet")
    ingest(
        read_parquet(tmp_path / "mine.parquet", shape=(2, 8, 8)),
        tmp_path / "out",
        "pq",
        progress=False,
    )
    back = load_image_set(tmp_path / "out")
    np.testing.assert_array_equal(back.images, images)
    np.testing.assert_allclose(back.labels["z"], np.linspace(0, 1, 5))
    datasets.Dataset(table).save_to_disk(str(tmp_path / "hf"))
    again = list(read_parquet(tmp_path / "hf", shape=(2, 8, 8)))
    np.testing.assert_array_equal(again[4].modalities["image"], images[4])
    with pytest.raises(BadObject, match="do not make shape"):
        ingest(
            read_parquet(tmp_path / "mine.parquet", shape=(3, 8, 8)),
            tmp_path / "bad",
            "pq",
            progress=False,
        )


def test_sdss_spectra_and_csv_light_curves(tmp_path):
    spectra = tmp_path / "spectra"
    spectra.mkdir()
    loglam = np.linspace(np.log10(3800), np.log10(9200), 200)
    coadd = fits.BinTableHDU(
        Table(
            {
                "loglam": loglam,
                "flux": np.ones(200, np.float32) * 3,
                "ivar": np.ones(200, np.float32) * 4,
            }
        )
    )
    specobj = fits.BinTableHDU(Table({"Z": [0.123]}))
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(spectra / "spec-0001-51000-0001.fits")
    obs = list(read_sdss_spectra(spectra))[0]
    np.testing.assert_allclose(obs.modalities["spectrum_wave"], 10**loglam)
    assert obs.labels["redshift"] == pytest.approx(0.123)
    report = ingest(read_sdss_spectra(spectra), tmp_path / "spec-out", "sdss", progress=False)
    assert report.written == 1
    back = load_multimodal_set(tmp_path / "spec-out", ["spectrum"])
    np.testing.assert_allclose(back.arrays["spectrum_wave"][0], 10**loglam)
    np.testing.assert_array_equal(back.arrays["spectrum_flux"][0], np.full(200, 3, np.float32))
    np.testing.assert_array_equal(back.arrays["spectrum_ivar"][0], np.full(200, 4, np.float32))
    assert back.labels["redshift"][0] == pytest.approx(0.123)
    # Wavelengths that do not increase are refused by name (or skipped and logged).
    coadd = Table({"loglam": loglam[::-1], "flux": np.ones(200, np.float32), "ivar": np.ones(200)})
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(coadd)]).writeto(spectra / "spec-bad.fits")
    with pytest.raises(BadObject, match="spec-bad.*wavelengths must be finite and increasing"):
        ingest(read_sdss_spectra(spectra), tmp_path / "spec-bad", "sdss", progress=False)
    skipped = ingest(
        read_sdss_spectra(spectra), tmp_path / "spec-skip", "sdss", skip_bad=True, progress=False
    )
    assert skipped.written == 1 and skipped.skipped[0]["id"] == "spec-bad"

    curves = tmp_path / "lc"
    curves.mkdir()
    Table(
        {
            "time": [1.0, 2.5, 4.0],
            "mag": [15.1, 15.3, 15.0],
            "err": [0.01, 0.01, 0.02],
            "band": ["I", "V", "I"],
        }
    ).write(curves / "star1.csv")
    obs = list(read_light_curves(curves))[0]
    assert list(obs.modalities["lc_band_name"]) == ["I", "V", "I"]
    ingest(read_light_curves(curves), tmp_path / "lc-out", "lcs", progress=False)
    row = pq.read_table(tmp_path / "lc-out" / "shard-00000.parquet").to_pylist()[0]
    assert row["lc_time"] == [1.0, 2.5, 4.0] and row["image"] is None
    assert row["lc_band"] == [0, 1, 0]  # codes into dataset.json's bands, in order met
    back = load_multimodal_set(tmp_path / "lc-out", ["lightcurve"])
    assert back.info.modalities["lightcurve"]["bands"] == ["I", "V"]
    np.testing.assert_allclose(back.curves["lc_mag"][0], [15.1, 15.3, 15.0], rtol=1e-6)
    Table({"time": [1.0], "mag": [1.0]}).write(curves / "broken.csv")
    with pytest.raises(BadObject, match=r"broken.*lacks column\(s\) \['err', 'band'\]"):
        ingest(read_light_curves(curves), tmp_path / "lc-bad", "lcs", progress=False)
    report = ingest(
        read_light_curves(curves), tmp_path / "lc-skip", "lcs", skip_bad=True, progress=False
    )
    assert report.written == 1 and report.skipped[0]["id"] == "broken"


def test_ingest_command(cutouts, tmp_path):
    from typer.testing import CliRunner

    from astroloom.cli import app

    folder, catalog, data = cutouts
    sorted(folder.iterdir())[0].write_bytes(b"SIMPLE  =   garbage")
    holes = data.images[2].copy()
    holes[0, 10, :10] = np.nan
    fits.PrimaryHDU(holes).writeto(sorted(folder.iterdir())[2], overwrite=True)
    args = [
        "data",
        "ingest",
        "fits-folder",
        str(folder),
        "--catalog",
        str(catalog),
        "--out",
        str(tmp_path / "out"),
        "--bands",
        "g,r,z",
        "--pixel-scale",
        "0.262",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "not a readable FITS" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "wrote 5 objects" in result.output and "skipped 1 bad objects" in result.output
    assert "kept 10 NaN/inf pixels as masked, in 1 of the images" in result.output


def test_duplicate_object_ids_are_refused_or_skipped(tmp_path):
    from astroloom.data.schema import Observation

    def records():
        for obj in ("a", "b", "a"):
            yield Observation(
                obj, {"image": np.zeros((1, 8, 8), np.float32) + len(obj)}, {"v": 1.0}
            )

    with pytest.raises(BadObject, match="'a': duplicate id"):
        ingest(records(), tmp_path / "x", "dups", progress=False)
    report = ingest(records(), tmp_path / "y", "dups", skip_bad=True, progress=False)
    assert report.written == 2 and report.skipped[0]["reason"] == "duplicate id"


def test_a_sixteen_bit_greyscale_picture_keeps_its_values(tmp_path):
    """Pillow's RGB conversion clips 16-bit PNGs at 255, which would turn a galaxy into a
    white square; the reader keeps the picture's own depth, in every band."""
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    y, x = np.mgrid[:32, :32] - 15.5
    galaxy = (60000 * np.exp(-(x**2 + y**2) / 40) + 500).astype(np.uint16)
    Image.fromarray(galaxy).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode.startswith("I")
    ingest(read_image_folder(folder), tmp_path / "out", "pngs", progress=False)
    back = load_image_set(tmp_path / "out").images[0]
    assert back.shape == (3, 32, 32)
    for band in back:
        np.testing.assert_allclose(band, galaxy / 65535.0, atol=1e-6)
    # Resampled to another size, the profile keeps its shape: bright centre, faint edge.
    ingest(read_image_folder(folder, size=16), tmp_path / "small", "pngs", progress=False)
    small = load_image_set(tmp_path / "small").images[0]
    assert small.shape == (3, 16, 16)
    assert 0.8 < small[1].max() < 1.0 and small[1, 0, 0] < 0.02
    # An upload to the explorer goes through the same reading.
    from astroloom.explore.uploads import parse_cutout

    cut = parse_cutout((folder / "deep.png").read_bytes(), "deep.png", bands=3, size=32).image
    assert cut.shape == (3, 32, 32)
    np.testing.assert_allclose(cut[0] / cut[0].max(), galaxy / galaxy.max(), atol=1e-5)
