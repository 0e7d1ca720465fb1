"""The diffusion simulator: schedule math, sampler, denoiser, conditioning modes, outputs."""

import contextlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from astroloom.cli import app
from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.generate.denoiser import DenoiserConfig, load_denoiser, train_denoiser
from astroloom.generate.evaluate import frechet_distance, memorisation
from astroloom.generate.jobs import generate_mode
from astroloom.generate.pipeline import invert_condition, observe, read_fits, write_fits
from astroloom.generate.sampler import ddim_invert, ddim_sample, slerp
from astroloom.generate.schedule import CosineSchedule
from astroloom.generate.unet import UNet, UNetConfig
from astroloom.model.foundation import load_foundation


# ---------------------------------------------------------------------------- schedule
def test_cosine_schedule_shape_and_forward_noising_moments():
    s = CosineSchedule(1000)
    ab = s.alpha_bar
    assert ab.shape == (1000,) and (ab.diff() < 0).all() and 0 < ab[-1] < 1e-3 and ab[0] > 0.999
    x0 = torch.full((20000, 1), 0.7)
    for t in (10, 500, 990):
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        xt = s.add_noise(x0, noise, torch.full((len(x0),), t))
        a = ab[t - 1]
        assert xt.mean().item() == pytest.approx(a.sqrt().item() * 0.7, abs=0.02)
        assert xt.var().item() == pytest.approx(1 - a.item(), abs=0.02)


@pytest.mark.parametrize("prediction", ["v", "epsilon"])
def test_prediction_conversions_invert_each_other(prediction):
    s = CosineSchedule(100)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 3, 4, 4, generator=g)
    t = torch.randint(1, 101, (8,), generator=g)
    xt = s.add_noise(x0, noise, t)
    out = noise if prediction == "epsilon" else s.v_target(x0, noise, t)
    x0_hat, eps_hat = s.split(out, xt, t, prediction)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(eps_hat, noise, rtol=1e-3, atol=1e-3)


def oracle(point: torch.Tensor, s: CosineSchedule):
    """The exact v-prediction for data that is always ``point``."""

    def net(x, t, cond):
        noise = (x - s._ab(t, x).sqrt() * point) / (1 - s._ab(t, x)).sqrt()
        return s.v_target(point.expand_as(x), noise, t)

    return net


def test_ddim_with_the_exact_denoiser_lands_on_the_data_and_is_deterministic():
    s = CosineSchedule(1000)
    point = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    net = oracle(point, s)
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    a = ddim_sample(net, s, noise, steps=20, eta=0.0)
    torch.testing.assert_close(a, point.expand_as(a), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(a, ddim_sample(net, s, noise, steps=20, eta=0.0))
    # η > 0 adds fresh noise per step; with the exact denoiser it still ends on the data.
    b = ddim_sample(net, s, noise, steps=20, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(b, point.expand_as(b), rtol=1e-3, atol=1e-3)


def test_epsilon_sampling_is_bounded_by_clipping_x0_at_the_noisiest_step():
    """Under ε-prediction x̂₀ divides by √ᾱ_T ≈ 5e-5: an ε̂ 1 % off at t ≈ T throws x̂₀
    hundreds of units away. Data N(0, 0.5²), whose exact ε̂ is known in closed form: exact
    DDIM samples have the data's spread; 1 % off at the noisiest steps, the samples' spread
    is ~15× too wide; with x̂₀ clipped to the data's range, it is back near the data's."""
    s, sigma = CosineSchedule(1000), 0.5

    def exact(x, t, cond):  # E[ε | x_t] for Gaussian data
        ab = s._ab(t, x)
        x0 = ab.sqrt() * sigma**2 * x / (ab * sigma**2 + 1 - ab)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    def off(x, t, cond):
        return exact(x, t, cond) * torch.where(t > 950, 1.01, 1.0).view(-1, 1, 1, 1)

    noise = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    spread = {
        name: ddim_sample(net, s, noise, steps=20, prediction="epsilon", clip=clip).std().item()
        for name, net, clip in (
            ("exact", exact, None),
            ("off", off, None),
            ("off, clipped", off, 4 * sigma),
            ("exact, clipped", exact, 4 * sigma),
        )
    }
    assert spread["exact"] == pytest.approx(sigma, rel=0.15), spread
    assert spread["off"] > 5 * sigma, spread
    assert spread["off, clipped"] == pytest.approx(sigma, rel=0.25), spread
    assert spread["exact, clipped"] == pytest.approx(spread["exact"], rel=0.05), spread


def test_orientation_augment_leaves_image_conditioned_samples_as_their_condition_saw_them():
    from astroloom.generate.denoiser import orientation_augment

    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 3, 8, 8, generator=g)
    fixed = torch.arange(800) % 2 == 0
    out = orientation_augment(x, fixed, g)
    assert torch.equal(out[fixed], x[fixed])
    moved = (out[~fixed] != x[~fixed]).flatten(1).any(1)
    assert 0.82 < moved.float().mean() < 0.93  # 7 of the 8 flips × turns move an image
    # Every output is one of the 8 symmetries of its input (nothing else happens to it).
    for a, b in zip(out[~fixed][:50], x[~fixed][:50], strict=True):
        views = [torch.rot90(v, k, dims=(-2, -1)) for v in (b, b.flip(-1)) for k in range(4)]
        assert any(torch.equal(a, v) for v in views)


def test_ddim_inversion_round_trip_and_slerp():
    s = CosineSchedule(1000)
    point = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    net = oracle(point, s)
    latent = ddim_invert(net, s, point, steps=20)
    torch.testing.assert_close(ddim_sample(net, s, latent, steps=20), point, rtol=1e-3, atol=1e-3)
    a, b = torch.randn(2, 1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, rtol=1e-4, atol=1e-4)
    mid = slerp(a, b, 0.5)
    assert mid.norm() == pytest.approx(((a.norm() + b.norm()) / 2).item(), rel=0.1)


# ---------------------------------------------------------------------------- network & io
def test_unet_shapes_null_condition_and_errors():
    torch.manual_seed(0)
    net = UNet(UNetConfig(cond_dim=16, channels=[16, 32, 32], image_size=32)).eval()
    # Residual branches and the output layer start at zero; give them weights so that the
    # condition can matter.
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.1)
    x, t = torch.randn(3, 3, 32, 32), torch.tensor([1, 500, 1000])
    cond = torch.randn(3, 16)
    assert net(x, t, cond).shape == x.shape
    nulls = torch.full_like(cond, float("nan"))
    torch.testing.assert_close(net(x, t, nulls), net(x, t, None))
    assert not torch.allclose(net(x, t, cond), net(x, t, None))
    # The channels-last activations change the memory layout only, never the numbers.
    assert net.memory_format == torch.channels_last
    fast = net(x, t, cond)
    net.memory_format = torch.contiguous_format
    torch.testing.assert_close(fast, net(x, t, cond), rtol=1e-4, atol=1e-5)
    net.memory_format = torch.channels_last
    with pytest.raises(ValueError, match="reads"):
        net(torch.randn(1, 3, 16, 16), t[:1], cond[:1])
    with pytest.raises(ValueError, match="image_size"):
        UNet(UNetConfig(image_size=36))


def test_fits_output_keeps_units_and_provenance(tmp_path):
    flux = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    meta = {"pixel_scale_arcsec": 0.262, "bands": ["g", "r", "z"], "foundation_run": "runs/x"}
    prov = {"mode": "others", "ids": ["a", "b"], "steps": 25, "guidance": 2.0, "seed": 3}
    path = write_fits(tmp_path / "g.fits", flux, meta, prov)
    data, header, back = read_fits(path)
    np.testing.assert_array_equal(data, flux)
    assert header["BUNIT"] == "nanomaggy" and header["PIXSCALE"] == 0.262
    assert header["BANDS"] == "g,r,z" and header["CONDMODE"] == "others"
    assert back == prov


def test_observe_broadens_and_adds_noise():
    img = np.zeros((1, 3, 33, 33), np.float32)
    img[:, :, 16, 16] = 1.0
    wide = observe(img, pixel_scale=0.25, extra_psf_fwhm=1.0)
    assert wide.sum() == pytest.approx(3.0, rel=1e-3) and wide.max() < 0.1
    noisy = observe(img, 0.25, noise_sigma=[0.1, 0.2, 0.3], seed=1)
    stds = (noisy - img).std(axis=(0, 2, 3))
    np.testing.assert_allclose(stds, [0.1, 0.2, 0.3], rtol=0.15)


def test_frechet_distance_and_memorisation_mean_what_they_say():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2 + np.array([1.0, 0, 0])
    # Closed form for N(0, I) vs N(μ, 4I): |μ|² + 3 (1 + 4 − 2·2) = 1 + 3.
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.08)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    train, held = rng.normal(size=(300, 50)), rng.normal(size=(100, 50))
    copied = memorisation(train[:100] + 1e-3, held, train)
    fresh = memorisation(rng.normal(size=(100, 50)), held, train)
    assert copied["ratio"] < 0.01 and copied["share_closer_than_held_out_5pct"] == 1.0
    assert 0.9 < fresh["ratio"] < 1.1


# ---------------------------------------------------------------------------- end to end
def test_denoiser_files_and_physical_units(denoiser_dir, survey_dir):
    den = load_denoiser(denoiser_dir)
    meta = json.loads((denoiser_dir / "denoiser.json").read_text())
    assert meta["sources"] == ["image", "others", "all"]
    assert len(meta["train_ids"]) + len(meta["held_out_ids"]) == 320
    assert not set(meta["train_ids"]) & set(meta["held_out_ids"])
    flux = load_multimodal_set(survey_dir, ["image"]).arrays["image"][:4]
    np.testing.assert_allclose(den.to_flux(den.to_unit(flux)), flux, rtol=1e-4, atol=1e-6)


def test_each_conditioning_mode_on_a_tiny_model(denoiser_dir, multimodal_run, survey_dir):
    den = load_denoiser(denoiser_dir)
    f = load_foundation(multimodal_run)
    data = load_multimodal_set(survey_dir, f.modalities)
    two = keep(data, np.array([0, 1]))
    for mode in ("others", "image", "all"):
        out = generate_mode(den, f, two, mode, n=2, steps=4)
        assert out.shape == (4, 3, 64, 64) and np.isfinite(out).all()
    # Deterministic at η = 0, seeded otherwise.
    again = generate_mode(den, f, two, "all", n=2, steps=4)
    np.testing.assert_array_equal(again, generate_mode(den, f, two, "all", n=2, steps=4))
    assert generate_mode(den, None, None, "unconditional", n=3, steps=4).shape == (3, 3, 64, 64)
    frames = generate_mode(den, f, two, "interpolate", n=3, steps=4)
    assert frames.shape == (3, 3, 64, 64) and not np.allclose(frames[0], frames[-1])
    inverted = generate_mode(den, f, two, "inversion", n=5, steps=4, inversion_iters=5)
    assert inverted.shape == (5, 3, 64, 64)
    with pytest.raises(ValueError, match="mode"):
        generate_mode(den, f, two, "dream", n=1)
    # The condition decides the image: from the same starting noise, a slot conditioned on
    # object 0 or on object 1 draws different images, while the slot whose condition is
    # unchanged draws the very same one (the batch does not leak between slots).
    from astroloom.generate.conditioning import condition_vectors
    from astroloom.generate.pipeline import sample

    cond = condition_vectors(f, two, "all")
    assert not np.allclose(cond[0], cond[1])
    same = sample(den, cond[[0, 0]], steps=4, seed=3)
    mixed = sample(den, cond[[0, 1]], steps=4, seed=3)
    np.testing.assert_allclose(same[0], mixed[0], rtol=1e-4, atol=1e-6)
    assert np.abs(mixed[1] - same[1]).mean() > 1e-3 * np.abs(same[1]).mean()


def test_epsilon_denoiser_end_to_end(multimodal_run, survey_dir, tmp_path):
    """ε-prediction trains, records the data's range, and samples images in that range
    through every step down from t = T (no blow-up at √ᾱ_T)."""
    cfg = DenoiserConfig(steps=20, batch_size=8, channels=[16, 32, 32], prediction="epsilon")
    train_denoiser(multimodal_run, survey_dir, tmp_path / "eps", cfg, progress=False)
    den = load_denoiser(tmp_path / "eps")
    assert den.prediction == "epsilon" and den.clip == pytest.approx(
        1.5 * den.meta["x0_abs_max"]
    )
    f = load_foundation(multimodal_run)
    two = keep(load_multimodal_set(survey_dir, f.modalities), np.array([0, 1]))
    flux = generate_mode(den, f, two, "others", n=2, steps=10)
    assert flux.shape == (4, 3, 64, 64) and np.isfinite(flux).all()
    unit = den.to_unit(flux)
    assert unit.abs().max() <= den.clip + 1e-4  # x̂₀ bounded, so the final image is too


def test_device_placement_on_cpu(denoiser_dir, monkeypatch):
    """`--device`: auto is the CPU here, the network sits where it is told, a sampler's
    tensors stay where they were made, and CUDA asked for without CUDA is a clear error."""
    from astroloom.generate.denoiser import autocast_for, resolve_device

    assert resolve_device("auto") == torch.device("cpu")
    den = load_denoiser(denoiser_dir, device="cpu")
    assert den.device == torch.device("cpu")
    x = torch.randn(2, 3, 64, 64)
    out = den(x, torch.tensor([500, 500]), None)
    assert out.device == x.device and out.dtype == torch.float32
    assert isinstance(autocast_for(torch.device("cpu")), contextlib.nullcontext)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        load_denoiser(denoiser_dir, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")
    # Where CUDA is present, auto picks it (the choice, not a GPU run, is what is tested).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_inversion_finds_a_condition_that_explains_the_examples(denoiser_dir, survey_dir):
    den = load_denoiser(denoiser_dir)
    examples = load_multimodal_set(survey_dir, ["image"]).arrays["image"][:4]
    cond = invert_condition(den, examples, iters=60, lr=0.1, seed=0)

    def loss(c):
        g = torch.Generator().manual_seed(9)
        x = den.to_unit(examples).repeat(16, 1, 1, 1)
        noise, t = torch.randn(x.shape, generator=g), torch.randint(1, 1001, (len(x),), generator=g)
        with torch.no_grad():
            out = den.net(den.schedule.add_noise(x, noise, t), t, c.expand(len(x), -1))
        return float(((out - den.schedule.v_target(x, noise, t)) ** 2).mean())

    assert loss(cond) < loss(torch.zeros_like(cond))


def test_generate_cli_sample_and_evaluate(denoiser_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "gen"
    result = runner.invoke(
        app,
        [
            "generate",
            "sample",
            str(denoiser_dir),
            "--mode",
            "others",
            "--n",
            "2",
            "--steps",
            "3",
            "--psf-fwhm",
            "0.5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data, header, prov = read_fits(out / "generated.fits")
    assert data.shape == (8, 3, 64, 64) and header["CONDMODE"] == "others"
    assert prov["extra_psf_fwhm_arcsec"] == 0.5 and len(prov["ids"]) == 4
    assert (out / "generated.png").stat().st_size > 1000
    bad = runner.invoke(
        app, ["generate", "sample", str(denoiser_dir), "--id", "nope", "--out", str(out)]
    )
    assert bad.exit_code != 0 and "nope" in str(bad.exception)
    # Settings that would fail deep in sampling, or quietly mean nothing, are refused
    # before the denoiser is loaded; nothing is written.
    for option, value, says in (
        ("--n", "0", "at least 1"),
        ("--eta", "-1", "0…1"),
        ("--noise", "-1", "≥ 0"),
        ("--guidance", "nan", "≥ 0"),
        ("--psf-fwhm", "-0.5", "≥ 0"),
    ):
        refused = runner.invoke(
            app, ["generate", "sample", str(denoiser_dir), option, value, "--out",
                  str(tmp_path / "refused")],
        )  # fmt: skip
        assert refused.exit_code != 0 and says in str(refused.exception), (option, refused)
    assert not (tmp_path / "refused").exists()
    result = runner.invoke(
        app, ["generate", "evaluate", str(denoiser_dir), "--n", "24", "--steps", "3"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((denoiser_dir / "generate_eval.json").read_text())
    others = report["modes"]["others"]
    floor = others["frechet_foundation"]["floor"]
    assert np.isfinite(floor) and floor > 0 and "mag_r" in others["fidelity"]
    assert {"generated_r2", "real_r2"} <= set(others["fidelity"]["mag_r"])
    assert others["frechet_foundation"]["splits"] == 10


def test_frechet_floor_knows_the_answer():
    """Generated from the held-out distribution: the distance sits at the floor; shifted by
    d in every one of 4 dimensions: floor + 4 d² (the ‖μ − μ′‖² term), as it must."""
    from astroloom.generate.evaluate import fd_with_floor

    rng = np.random.default_rng(0)
    held = rng.normal(size=(2000, 4))
    same = fd_with_floor(rng.normal(size=(2000, 4)), held)
    assert same["n"] == 1000 and 0 < same["floor"] < 0.05
    assert same["generated"] == pytest.approx(same["floor"], abs=0.05)
    shifted = fd_with_floor(rng.normal(size=(2000, 4)) + 0.5, held)
    assert shifted["generated"] == pytest.approx(shifted["floor"] + 4 * 0.5**2, abs=0.08)
    # A generator that returns its conditioning galaxy sits exactly at the floor: no image
    # is ever compared with the galaxy it came from (drawing the generated half from all
    # the held-out objects put it below the floor).
    copy = fd_with_floor(held[:200].copy(), held[:200], splits=8)
    assert copy["generated"] == copy["floor"] and copy["splits"] == 8
    assert 0 < copy["floor_std"] < copy["floor"]
    with pytest.raises(ValueError, match="one generated image per conditioning galaxy"):
        fd_with_floor(held[:10], held[:20])


def test_fidelity_r2_is_one_for_exact_measurements_and_negative_for_a_bias():
    from astroloom.generate.evaluate import r2, rank_r2

    truth = np.linspace(0.0, 1.0, 50)
    assert r2(truth, truth) == pytest.approx(1.0) and rank_r2(truth, truth) == pytest.approx(1.0)
    # A measurement biased by a whole spread keeps its ranking (ρ² = 1) but not R².
    biased = truth + 1.0
    assert rank_r2(biased, truth) == pytest.approx(1.0) and r2(biased, truth) < -10
