"""Unit-free inputs: the same galaxies in nanomaggies, in ADU with another zero point and
in microjansky embed alike; 8-bit photographs tokenise into the same range; cutouts at
another pixel scale are brought to the model's; the renditions of the domain-shift
benchmark are the same galaxies."""

import numpy as np
import pytest
import torch

from astroloom.data.schema import DataError, zero_point_of
from astroloom.data.shards import load_image_set
from astroloom.model.checkpoint import load_checkpoint
from astroloom.tokenize.image import ImageTokenizer


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def model_and_images(trained_run, mock_dir):
    model, _, tokenizer = load_checkpoint(trained_run)
    assert tokenizer.image.normalisation == "object"
    return model, tokenizer.image, load_image_set(mock_dir).images[:48]


def test_three_units_give_the_same_embeddings(model_and_images):
    model, tok, nmgy = model_and_images
    adu = nmgy * 10 ** (0.4 * (27.0 - 22.5)) + 150.0  # zero point 27, a sky pedestal
    ujy = nmgy * 3.631  # 1 nanomaggy = 3.631 µJy
    units = [(nmgy, "nanomaggy", None), (adu, "ADU", 27.0), (ujy, "uJy", None)]
    vectors = []
    for images, unit, zp in units:
        batch = {"image": tok.tokens(torch.from_numpy(images), zero_point=zero_point_of(unit, zp))}
        vectors.append(model.embed(batch).numpy())
    for other in vectors[1:]:
        assert cosine(vectors[0], other).min() >= 0.99
    # Without a zero point the brightness is unknown, and the three still agree.
    unknown = [model.embed({"image": tok.tokens(torch.from_numpy(x))}).numpy() for x, *_ in units]
    assert cosine(unknown[0], unknown[1]).min() >= 0.99
    assert cosine(unknown[0], unknown[2]).min() >= 0.99


def test_brightness_reaches_the_embedding_when_the_unit_is_known(model_and_images):
    model, tok, nmgy = model_and_images
    known = model.embed({"image": tok.tokens(torch.from_numpy(nmgy), zero_point=22.5)})
    fainter = model.embed({"image": tok.tokens(torch.from_numpy(nmgy), zero_point=24.5)})
    assert not torch.allclose(known, fainter)  # told 2 mag fainter: another embedding


def test_colours_are_context_values_whatever_the_unit(mock_dir):
    """model.image_colours: the object's colours follow its brightness as context values —
    band ratios, so the same in nanomaggies and in ADU with a sky pedestal — and they are
    the galaxies' colours (the g − r label) rather than the sky's."""
    images = load_image_set(mock_dir)
    nmgy = images.images[:200]
    tok = ImageTokenizer(8, [1.0] * 3, normalisation="object", image_size=64, colours=True)
    plain = ImageTokenizer(8, [1.0] * 3, normalisation="object", image_size=64)
    assert (tok.n_context, plain.n_context) == (3, 1)
    context = tok.tokens(torch.from_numpy(nmgy), zero_point=22.5).context.numpy()
    assert context.shape == (200, 3)
    adu = nmgy * 10 ** (0.4 * (27.0 - 22.5)) + 150.0
    in_adu = tok.tokens(torch.from_numpy(adu), zero_point=27.0).context.numpy()
    np.testing.assert_allclose(in_adu[:, 1:], context[:, 1:], atol=1e-3)
    np.testing.assert_allclose(in_adu[:, 0], context[:, 0], atol=1e-3)  # brightness too
    g_r = images.labels["g_r"][:200].astype(float)
    assert np.corrcoef(context[:, 1], g_r)[0, 1] > 0.7
    # A band with no light has no colour: unknown (NaN), not a number from the noise.
    dark = nmgy[:4].copy()
    dark[:, 0] = 0.0
    colours = tok.tokens(torch.from_numpy(dark), zero_point=22.5).context.numpy()
    assert np.isnan(colours[:, 1]).all() and np.isfinite(colours[:, 2]).all()
    with pytest.raises(ValueError, match="object normalisation"):
        ImageTokenizer(8, [1.0] * 3, normalisation="survey", colours=True)


def test_a_photograph_ingested_from_png_keeps_its_colours(mock_dir, tmp_path):
    """The path a user's colour pictures take (PNG → `data ingest images` → tokenizer): an
    8-bit asinh composite of each galaxy, saved as a PNG with red = reddest band, still gives
    colours that follow the galaxy's g − r (the flux unit and brightness being unknown)."""
    from PIL import Image

    from astroloom.data.augment import lupton_photo
    from astroloom.data.readers import ingest, read_image_folder

    images = load_image_set(mock_dir)
    folder = tmp_path / "pictures"
    folder.mkdir()
    n = 120
    for i in range(n):
        x = images.images[i]
        stretch = float(np.nanmax(np.nanmean(x, axis=0))) * 0.3
        pixels = np.round(lupton_photo(x, 8.0, stretch, jpeg_quality=None) * 255).astype(np.uint8)
        Image.fromarray(np.moveaxis(pixels[::-1], 0, -1)).save(folder / f"{images.ids[i]}.png")
    pictures = read_image_folder(folder, bands=["g", "r", "z"])
    ingest(pictures, tmp_path / "ds", "pngs", progress=False)
    back = load_image_set(tmp_path / "ds")
    assert back.info.image.known_zero_point() is None
    tok = ImageTokenizer(8, [1.0] * 3, normalisation="object", image_size=64, colours=True)
    context = tok.tokens(torch.from_numpy(back.images), zero_point=None).context.numpy()
    assert np.isnan(context[:, 0]).all()  # brightness: unknown for a picture
    g_r = dict(zip(images.ids[:n], images.labels["g_r"][:n].astype(float), strict=True))
    truth = np.array([g_r[i] for i in back.ids])
    ok = np.isfinite(context[:, 1])
    assert ok.mean() > 0.9
    assert np.corrcoef(context[ok, 1], truth[ok])[0, 1] > 0.6


def test_a_model_with_colours_reads_them(mock_dir):
    from astroloom.config import ConfigError, ModelConfig, model_differences
    from astroloom.model.multimodal import build_model

    with pytest.raises(ConfigError, match="image_colours needs"):
        ModelConfig(image_norm="survey", image_colours=True).validate()
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, image_colours=True)
    plain = ModelConfig(n_layer=1, n_head=2, n_embd=32)
    assert model_differences(plain, cfg) == ["model.image_colours: False → True"]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    tok = ImageTokenizer(8, [1.0] * 3, normalisation="object", image_size=64, colours=True)
    images = torch.from_numpy(load_image_set(mock_dir).images[:8])
    tokens = tok.tokens(images, zero_point=22.5)
    redder = tok.tokens(images, zero_point=22.5)
    redder.context = redder.context.clone()
    redder.context[:, 1] += 0.5
    a, b = model.embed({"image": tokens}), model.embed({"image": redder})
    assert not torch.allclose(a, b)  # told the galaxies are redder: other embeddings


def test_photographs_tokenise_into_the_same_range(model_and_images):
    from astroloom.data.augment import lupton_photo

    _, tok, nmgy = model_and_images
    photos = np.stack(
        [lupton_photo(x, 8.0, float(np.nanmax(x.mean(0))) * 0.3, 85) for x in nmgy]
    )
    linear, _ = tok.encode(torch.from_numpy(nmgy), zero_point=22.5)
    picture, _ = tok.encode(torch.from_numpy(photos))
    lo_a, hi_a = np.percentile(linear.numpy(), [1, 99])
    lo_b, hi_b = np.percentile(picture.numpy(), [1, 99])
    # Pixel values 0…1 against 0.001…1 nanomaggies: the same few units after normalising.
    assert -4 < lo_a < 1 and -4 < lo_b < 1 and 2 < hi_a < 6 and 2 < hi_b < 6
    # astroloom 0.1's survey stretch ties the range to the unit: ADU land far outside it.
    survey = ImageTokenizer(8, tok.scale, normalisation="survey")
    in_adu, _ = survey.encode(torch.from_numpy(nmgy * 10 ** (0.4 * 4.5)))
    assert np.percentile(in_adu.numpy(), 99) > hi_a + 3


def test_another_pixel_scale_is_resampled_to_the_models():
    tok = ImageTokenizer(8, [1.0], pixel_scale=0.25, normalisation="object", image_size=64)
    y, x = np.indices((64, 64)) - 31.5
    coarse = np.exp(-0.5 * (x**2 + y**2) / 3.0**2)[None, None].astype(np.float32)  # 0.5″/px
    out = tok.resample(torch.from_numpy(coarse), pixel_scale=0.5)
    assert out.shape[-1] == 64  # 32″ of sky resampled to 128 px, cropped to the model's 64
    profile = out[0, 0].numpy()
    half = profile.max() / 2
    width = (profile[32] > half).sum()  # FWHM in the model's pixels: twice as many
    assert width == pytest.approx(2 * 2.355 * 3.0, abs=2)
    unknown = tok.resample(torch.from_numpy(coarse), pixel_scale=None)
    assert unknown.shape[-1] == 64 and torch.equal(unknown, torch.from_numpy(coarse))


def test_units_are_checked():
    assert zero_point_of("nanomaggy") == pytest.approx(22.5)
    assert zero_point_of("uJy") == pytest.approx(23.9, abs=1e-3)
    assert zero_point_of("ADU", 27.0) == 27.0 and zero_point_of("ADU") is None
    assert zero_point_of("unknown") is None
    with pytest.raises(DataError, match="unknown flux unit 'furlongs'"):
        zero_point_of("furlongs")


def test_renditions_are_the_same_galaxies(tmp_path):
    from astroloom.data.sim.renditions import simulate_renditions

    infos = simulate_renditions(tmp_path, n=12, seed=3, shard_size=6, workers=1, progress=False)
    sets = {name: load_image_set(tmp_path / name) for name in infos}
    ids = [list(s.ids) for s in sets.values()]
    assert ids[0] == ids[1] == ids[2]
    np.testing.assert_array_equal(
        sets["survey"].labels["ellipticity"], sets["photo"].labels["ellipticity"]
    )
    assert infos["second"].image.known_zero_point() == 27.0
    assert infos["photo"].image.known_zero_point() is None
    photo = sets["photo"].images
    assert photo.min() >= 0 and photo.max() <= 1  # 8-bit pictures
    brightest = np.argsort(sets["survey"].labels["mag_r"])[:4]

    def sky_subtracted(images):
        return images - np.median(images[:, :, :4], axis=(2, 3), keepdims=True)

    survey, second = (sky_subtracted(sets[k].images[brightest]) for k in ("survey", "second"))
    # The same flux, in ADU with zero point 27 instead of nanomaggies (× 10^(0.4 × 4.5)).
    flux = [x[:, :, 16:48, 16:48].sum((1, 2, 3)) for x in (survey, second)]
    np.testing.assert_allclose(flux[1] / flux[0], 10 ** (0.4 * 4.5), rtol=0.25)

    assert infos["second"].image.pixel_scale_arcsec == 0.40
    assert np.isnan(infos["photo"].image.pixel_scale_arcsec)


def test_init_continues_from_a_runs_weights_and_tokenizer(trained_run, mock_dir, tmp_path):
    from conftest import tiny_config

    from astroloom.config import ConfigError
    from astroloom.train.loop import train

    slow = ("train.lr=1e-9", "train.min_lr=1e-10", "train.warmup_steps=0")
    cfg = tiny_config(mock_dir, tmp_path / "more", 2, *slow)
    cfg.train.init = str(trained_run)
    train(cfg, progress=False)
    base, _, base_tok = load_checkpoint(trained_run)
    more, _, more_tok = load_checkpoint(tmp_path / "more")
    for (name, a), b in zip(base.state_dict().items(), more.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)  # lr ≈ 0: unchanged
    assert more_tok.to_dict() == base_tok.to_dict()  # the run's normalisation, not remeasured

    wider = tiny_config(mock_dir, tmp_path / "wider", 2, "model.n_embd=32", "model.n_head=2")
    wider.train.init = str(trained_run)
    with pytest.raises(ConfigError, match=r"model.n_head: 4 → 2; model.n_embd: 64 → 32"):
        train(wider, progress=False)
    same = tiny_config(mock_dir, trained_run, 2)
    same.train.init = str(trained_run)
    with pytest.raises(ConfigError, match="that run's own folder"):
        train(same, progress=False)


def test_init_on_the_command_line_takes_the_runs_settings(trained_run, mock_dir, tmp_path):
    from typer.testing import CliRunner

    from astroloom.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--init", str(trained_run), "--set", f"data.path='{mock_dir}'",
         "--set", f"out='{tmp_path / 'mine'}'", "--set", "train.steps=3",
         "--set", "train.eval_every=3", "--set", "train.checkpoint_every=3"],
    )
    assert result.exit_code == 0, result.output
    _, cfg, _ = load_checkpoint(tmp_path / "mine")
    assert cfg.train.init == str(trained_run) and cfg.model.n_embd == 64
