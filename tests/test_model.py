import pytest
import torch

from astroloom.config import MODEL_PRESETS, ModelConfig
from astroloom.model.gpt import FoundationModel


@pytest.mark.parametrize(("name", "low", "high"), [("tiny", 0.8e6, 1.3e6), ("small", 4e6, 6e6)])
def test_preset_sizes(name, low, high):
    n = FoundationModel(ModelConfig(**MODEL_PRESETS[name])).num_parameters()
    assert low < n < high


def small_model():
    torch.manual_seed(0)
    return FoundationModel(ModelConfig(n_layer=2, n_head=2, n_embd=32, image_size=32)).eval()


def test_predictions_are_causal():
    model = small_model()
    x = torch.randn(2, 16, model.cfg.patch_dim)
    y = x.clone()
    y[:, 9] += 1.0
    out_x, out_y = model(x), model(y)
    torch.testing.assert_close(out_x[:, :9], out_y[:, :9])
    assert not torch.allclose(out_x[:, 9:], out_y[:, 9:])


def test_loss_learns_a_predictable_sequence():
    # Each patch equals the previous one: a model must drive the loss well below its start.
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=32, image_size=8, patch_size=2, n_bands=1)
    model = FoundationModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    base = torch.randn(64, 1, model.cfg.patch_dim)
    x = base.expand(64, 16, model.cfg.patch_dim).contiguous()
    first = float(model.loss(x).detach())
    for _ in range(150):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first


def test_mask_excludes_missing_targets():
    model = small_model()
    x = torch.randn(1, 16, model.cfg.patch_dim)
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[:, 5] = False
    y = x.clone()
    y[:, 5] = 1e3  # a garbage target where the pixels are missing
    # Token 5 is still an input for later predictions, so zero it as the tokenizer does.
    x[:, 5] = 0.0
    y[:, 5] = 0.0
    assert float(model.loss(x, valid)) == pytest.approx(float(model.loss(y, valid)))


def test_embed_layers_and_pooling():
    model = small_model()
    x = torch.randn(3, 16, model.cfg.patch_dim)
    assert model.embed(x).shape == (3, 32)
    assert model.default_layer() == 1
    torch.testing.assert_close(
        model.embed(x, layer=2, pool="last"), model.hidden_states(x)[2][:, -1]
    )
    with pytest.raises(ValueError, match="layer must lie"):
        model.embed(x, layer=5)
    with pytest.raises(ValueError, match="pool"):
        model.embed(x, pool="max")


def test_bad_token_shapes():
    model = small_model()
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(torch.randn(1, 17, model.cfg.patch_dim))
    with pytest.raises(ValueError, match="patches of 192"):
        model(torch.randn(1, 4, 10))
    with pytest.raises(ValueError, match="batch>0"):
        model(torch.randn(0, 4, model.cfg.patch_dim))


def test_activation_checkpointing_gives_the_same_gradients():
    model = small_model().train()
    x = torch.randn(4, 16, model.cfg.patch_dim)
    model.loss(x).backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing = True
    model.loss(x).backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)
