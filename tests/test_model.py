"""The one model class in its image-only form: sizes, causality, learning, masks, pooling,
bad shapes, activation checkpointing and the fast single-modality path."""

import pytest
import torch

from astroloom.config import MODEL_PRESETS, ModelConfig
from astroloom.model.multimodal import ModalityError, MultimodalModel
from astroloom.tokenize.image import ImageTokenizer
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
