"""The one model class in its image-only form: sizes, causality, learning, masks, pooling,
bad shapes, activation checkpointing and the fast single-modality path."""

import pytest
import torch

from astroloom.config import MODEL_PRESETS, ModelConfig
from astroloom.model.multimodal import ModalityError, MultimodalModel
from astroloom.tokenize.image import ImageTokenizer, spiral_order
from astroloom.tokenize.tokens import ModalityTokens


@pytest.mark.parametrize(("name", "low", "high"), [("tiny", 0.8e6, 1.3e6), ("small", 4e6, 6e6)])
def test_preset_sizes(name, low, high):
    n = MultimodalModel(ModelConfig(**MODEL_PRESETS[name])).num_parameters()
    assert low < n < high


def small_model(**extra):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=32, image_size=32, **extra)
    return MultimodalModel(cfg).eval()


def image_batch(images: torch.Tensor) -> dict[str, ModalityTokens]:
    tok = ImageTokenizer(8, [1.0] * images.shape[1], pixel_scale=0.262)
    return {"image": tok.tokens(images)}


def predict(model, batch):
    _, h = model.predictions(batch, model.canonical_plan(batch, "autoregressive"))
    return h


def test_predictions_are_causal():
    model = small_model()
    x = image_batch(torch.randn(2, 3, 32, 32))
    changed = {"image": x["image"].take(slice(None))}
    values = changed["image"].values.clone()
    values[:, 9] += 1.0
    changed["image"].values = values
    out_x, out_y = predict(model, x), predict(model, changed)
    # Slot j predicts token j from the tokens before it: token 9 reaches slots 10 on.
    torch.testing.assert_close(out_x[:, :10], out_y[:, :10])
    assert not torch.allclose(out_x[:, 10:], out_y[:, 10:])


def test_loss_learns_a_predictable_sequence():
    # Every patch of an object equals its first one: the loss must fall well below its start.
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=32, image_size=8, patch_size=2, n_bands=1)
    model = MultimodalModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    base = torch.randn(64, 1, 1, 1) * 0.5
    batch = image_batch_of(base.expand(64, 1, 8, 8).contiguous(), patch=2)
    plan = model.canonical_plan(batch, "autoregressive")
    first = float(model.loss(batch, plan)[0].detach())
    for _ in range(150):
        loss, _ = model.loss(batch, plan)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first


def image_batch_of(images: torch.Tensor, patch: int) -> dict[str, ModalityTokens]:
    tok = ImageTokenizer(patch, [1.0] * images.shape[1], pixel_scale=0.262)
    return {"image": tok.tokens(images)}


def test_mask_excludes_missing_targets():
    model = small_model()
    images = torch.randn(1, 3, 32, 32)
    images[:, :, :8, 8:16] = float("nan")  # one whole patch missing
    a = image_batch(images)
    plan = model.canonical_plan(a, "autoregressive")
    # What the masked pixels would be had they been measured cannot change the loss.
    b = {"image": a["image"].take(slice(None))}
    values = b["image"].values.clone()
    values[~b["image"].valid] = 1e3
    b["image"].values = values
    assert float(model.loss(a, plan)[0]) == pytest.approx(float(model.loss(b, plan)[0]))


def test_embed_layers_and_pooling():
    model = small_model()
    batch = image_batch(torch.randn(3, 3, 32, 32))
    assert model.embed(batch).shape == (3, 32)
    assert model.default_layer() == 1
    states, _ = model.hidden_states(batch, model.canonical_plan(batch, "autoregressive"))
    torch.testing.assert_close(model.embed(batch, layer=2, pool="last"), states[2][:, -1])
    with pytest.raises(ValueError, match="layer must lie"):
        model.embed(batch, layer=5)
    with pytest.raises(ValueError, match="pool"):
        model.embed(batch, pool="max")
    # Mean and spread over the tokens, by hand.
    h = states[1]
    torch.testing.assert_close(
        model.embed(batch, pool="meanstd"), torch.cat([h.mean(1), h.std(1, correction=0)], 1)
    )
    assert model.embedding_dim("meanstd") == 64
    # Moments of a 4 × 4 patch grid, by hand: the quadrupole over the central 2 × 2 patches,
    # then over all 16 (the corners lie 2.12 pitches out, inside the 2.2 disc), then the
    # dipole over the central 2 × 2.
    order = torch.tensor(spiral_order(4))
    x, y = (order % 4).double() - 1.5, (order // 4).double() - 1.5
    expected = [h.mean(1), h.std(1, correction=0)]
    central = x.abs().clamp_min(y.abs()) < 1
    for inner, m in ((central, 2), (torch.ones(16, dtype=torch.bool), 2), (central, 1)):
        a = (h[:, inner] - h[:, inner].mean(1, keepdim=True)).double()
        wave = torch.exp(1j * m * torch.atan2(y, x))[inner]
        expected.append(((a * wave[None, :, None]).sum(1).abs() / inner.sum()).float())
    torch.testing.assert_close(model.embed(batch, pool="moments"), torch.cat(expected, 1))
    assert model.embedding_dim("moments") == 160
    # Radial: the moments, then the mean state within 1 pitch (the central 2 × 2) and within
    # 1.6 (all but the four corners, 2.12 out) less the mean of all 16 patches.
    within = (x**2 + y**2).sqrt()
    radial = [h[:, within <= r].mean(1) - h.mean(1) for r in (1.0, 1.6)]
    torch.testing.assert_close(model.embed(batch, pool="radial"), torch.cat(expected + radial, 1))
    assert model.embedding_dim("radial") == 224


def test_quadrupole_moments_measure_elongation_not_its_direction():
    """Token states that vary like an elongated galaxy's light: the moments are the same
    turned by 90° (the grid's symmetry), the 4 × 4 disc sees the elongation at 0° and at
    45°, a round pattern gives none, a lopsided one a dipole. (The central 2 × 2 patches,
    all at 45°, see only the diagonal part by their geometry; what a patch's state holds
    about its own pixels does the rest.)"""
    model = small_model()
    batch = image_batch(torch.zeros(1, 3, 32, 32))
    xy = batch["image"].position[0] / 8.0  # pixel scale 1, patches 8 pixels wide
    seq = model._sequence(batch, model.canonical_plan(batch, "masked"))

    def moments(pattern: torch.Tensor) -> torch.Tensor:
        h = pattern[None, :, None].expand(1, -1, 32).float()
        return model._image_moments(h, seq, batch["image"])

    r2 = (xy**2).sum(1)
    along = {0: xy[:, 1] ** 2, 45: (xy[:, 0] - xy[:, 1]) ** 2 / 2, 90: xy[:, 0] ** 2}
    bars = {angle: moments(torch.exp(-(r2 - a) / 4 - a)) for angle, a in along.items()}
    torch.testing.assert_close(bars[90], bars[0], rtol=1e-5, atol=1e-7)
    outer = slice(32, 64)
    assert float(bars[0][:, outer].min()) > 0.01 and float(bars[45][:, outer].min()) > 0.01
    assert float(bars[45][:, :32].min()) > 0.01
    torch.testing.assert_close(moments(torch.exp(-r2)), torch.zeros(1, 96), atol=1e-6, rtol=0)
    # A pattern brighter on one side: a dipole, whichever side.
    sides = [moments(torch.exp(-((xy[:, 0] - dx) ** 2 + xy[:, 1] ** 2))) for dx in (0.5, -0.5)]
    assert float(sides[0][:, 64:].min()) > 0.01
    torch.testing.assert_close(sides[1], sides[0], rtol=1e-5, atol=1e-7)


def test_radial_terms_tell_a_ring_from_a_filled_disc():
    """Two round patterns with the same mean state over the patches — light in a ring about
    a faint core, and light filling the core — have no angular moments to tell them apart;
    the radial terms do, with opposite signs, and a flat pattern has none."""
    model = small_model()
    batch = image_batch(torch.zeros(1, 3, 32, 32))
    xy = batch["image"].position[0] / 8.0  # pixel scale 1, patches 8 pixels wide
    seq = model._sequence(batch, model.canonical_plan(batch, "masked"))
    r = (xy**2).sum(1).sqrt()

    def read(pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = (pattern / pattern.mean())[None, :, None].expand(1, -1, 32).float()
        return (
            model._image_moments(h, seq, batch["image"]),
            model._image_radial(h, seq, batch["image"]),
        )

    ring, filled = read(torch.exp(-((r - 1.6) ** 2))), read(torch.exp(-(r**2)))
    for moments, _ in (ring, filled):
        torch.testing.assert_close(moments, torch.zeros(1, 96), atol=1e-6, rtol=0)
    # The ring's core is fainter than its mean state, the filled disc's brighter.
    assert float(ring[1].max()) < 0 < float(filled[1].min())
    assert float(ring[1][:, :32].max()) < -0.1 and float(filled[1][:, :32].min()) > 0.1
    flat = read(torch.ones(len(r)))[1]
    torch.testing.assert_close(flat, torch.zeros(1, 64), atol=1e-6, rtol=0)
    assert model._image_radial(torch.zeros(2, 5, 32), seq, None).shape == (2, 64)


def test_bad_token_shapes():
    model = small_model(max_tokens=16)
    with pytest.raises(ModalityError, match="more than the model's context"):
        model.embed(image_batch(torch.randn(1, 3, 40, 40)))
    bad = ModalityTokens(torch.zeros(1, 4, 10), torch.ones(1, 4, 10, dtype=bool),
                         torch.ones(1, 4, dtype=bool), torch.zeros(1, 4, 2))
    with pytest.raises(ModalityError, match="reads 192"):
        model.embed({"image": bad})
    with pytest.raises(ModalityError, match="non-zero batch"):
        model.embed(image_batch(torch.randn(0, 3, 32, 32)))


def test_activation_checkpointing_gives_the_same_gradients():
    model = small_model().train()
    batch = image_batch(torch.randn(4, 3, 32, 32))
    plan = model.canonical_plan(batch, "autoregressive")
    model.loss(batch, plan)[0].backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing = True
    model.loss(batch, plan)[0].backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("objective", ["autoregressive", "masked"])
def test_single_modality_fast_path_equals_the_general_path(objective):
    """One modality with every token present skips sorting and computes shared positions
    once; a batch where one patch is absent takes the general path. Both must agree on the
    objects they share."""
    model = small_model(objective=objective)
    images = torch.randn(3, 3, 32, 32)
    fast = image_batch(images)
    assert fast["image"].dense and fast["image"].position.stride(0) == 0  # a shared grid
    general = {"image": fast["image"].take(slice(None))}
    general["image"].dense = False
    general["image"].position = general["image"].position.contiguous()  # not shared
    plan = model.canonical_plan(fast, objective)
    a, b = model.embed(fast), model.embed(general)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    spread = [model.embed(x, pool="meanstd") for x in (fast, general)]
    torch.testing.assert_close(*spread, rtol=1e-5, atol=1e-5)
    la, _ = model.loss(fast, plan)
    lb, _ = model.loss(general, plan)
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    # One object missing a patch: the general path; the other objects' vectors unchanged.
    holed = images.clone()
    holed[0, :, :8, :8] = float("nan")
    c = model.embed(image_batch(holed))
    torch.testing.assert_close(a[1:], c[1:], rtol=1e-5, atol=1e-6)
