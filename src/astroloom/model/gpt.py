"""The foundation model: a GPT over image patches, readable top to bottom.

Pre-norm transformer blocks with causal scaled-dot-product attention; a linear patch
encoder in, a linear patch decoder out; the surrogate task is to predict patch ``t+1``
from patches ``≤ t`` (Huber loss on arcsinh-stretched pixels, as AstroPT).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from astroloom.config import ModelConfig


def next_patch_error(
    pred: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor | None, delta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of Huber errors, number of valid target values) of predicting patch t+1 at t.

    Returned as a sum and a count so that micro-batches and ranks can be combined into the
    exact mean of the whole batch.
    """
    err = F.huber_loss(pred[:, :-1].float(), tokens[:, 1:].float(), reduction="none", delta=delta)
    if valid is None:
        return err.sum(), torch.tensor(float(err.numel()), device=err.device)
    mask = valid[:, 1:].to(err.dtype)
    return (err * mask).sum(), mask.sum()


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, causal: bool = True, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Causal attention, or (``causal=False``) bidirectional attention over the keys
        that ``key_mask`` ``(B, T)`` marks present."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        mask = None if causal or key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, causal: bool = True, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal, key_mask)
        return x + self.mlp(self.ln_2(x))


class FoundationModel(nn.Module):
    """Next-patch GPT. ``tokens`` are ``(B, N, patch_dim)`` in spiral order."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = nn.Linear(cfg.patch_dim, cfg.n_embd)
        self.pos = nn.Parameter(torch.zeros(1, cfg.n_patches, cfg.n_embd))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.decoder = nn.Linear(cfg.n_embd, cfg.patch_dim)
        # Recompute each block's activations in the backward pass instead of storing them:
        # less memory for deep models or long sequences, at about one extra forward pass.
        self.activation_checkpointing = False
        self.apply(self._init_weights)
        nn.init.normal_(self.pos, std=0.02)
        # GPT-2's scaled init of the residual projections keeps deep stacks stable.
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """All parameters, or (``non_embedding``) those of the transformer blocks and final
        norm only: the patch encoder/decoder and position table play the part of a language
        model's token and position embeddings, which scaling laws leave out of N."""
        if not non_embedding:
            return sum(p.numel() for p in self.parameters())
        return sum(p.numel() for p in self.blocks.parameters()) + sum(
            p.numel() for p in self.ln_f.parameters()
        )

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.ndim != 3 or tokens.shape[0] == 0:
            raise ValueError(
                f"tokens must have shape (batch>0, sequence, {self.cfg.patch_dim}); "
                f"got {tuple(tokens.shape)}"
            )
        if tokens.shape[1] > self.cfg.n_patches:
            raise ValueError(
                f"sequence of {tokens.shape[1]} tokens is longer than the model's context "
                f"({self.cfg.n_patches} patches)"
            )
        if tokens.shape[2] != self.cfg.patch_dim:
            raise ValueError(
                f"tokens have {tokens.shape[2]} values each; this model reads patches of "
                f"{self.cfg.patch_dim} ({self.cfg.patch_size}×{self.cfg.patch_size}×"
                f"{self.cfg.n_bands} bands)"
            )

    def hidden_states(self, tokens: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Residual stream after the embedding (index 0) and after each block (1…n_layer)."""
        self._check_tokens(tokens)
        x = self.drop(self.encoder(tokens) + self.pos[:, : tokens.shape[1]])
        states = [x]
        for block in self.blocks[: upto if upto is not None else len(self.blocks)]:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            states.append(x)
        return states

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prediction of the next patch at every position: ``(B, N, patch_dim)``."""
        return self.decoder(self.ln_f(self.hidden_states(tokens)[-1]))

    def loss(
        self, tokens: torch.Tensor, valid: torch.Tensor | None = None, delta: float = 1.0
    ) -> torch.Tensor:
        """Mean Huber loss of next-patch prediction over valid (finite) target pixels."""
        total, count = next_patch_error(self(tokens), tokens, valid, delta)
        return total / count.clamp_min(1.0)

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 N for the weights plus the attention scores
        (Kaplan et al. 2020: 2 · n_layer · n_ctx · n_embd forward, ×3 with backward)."""
        c = self.cfg
        return 6.0 * self.num_parameters() + 6.0 * c.n_layer * c.n_patches * c.n_embd

    def default_layer(self) -> int:
        return (self.cfg.n_layer + 1) // 2

    @torch.no_grad()
    def embed(
        self, tokens: torch.Tensor, layer: int | None = None, pool: str = "mean"
    ) -> torch.Tensor:
        """One vector per object: the hidden state after block ``layer``, pooled over patches."""
        return self.pooled_state(tokens, layer, pool)

    def pooled_state(
        self, tokens: torch.Tensor, layer: int | None = None, pool: str = "mean"
    ) -> torch.Tensor:
        """:meth:`embed` with gradients (for fine-tuning)."""
        layer = self.default_layer() if layer is None else layer
        if not 0 <= layer <= self.cfg.n_layer:
            raise ValueError(f"layer must lie in 0…{self.cfg.n_layer}, got {layer}")
        h = self.hidden_states(tokens, upto=layer)[layer]
        if pool == "mean":
            return h.mean(dim=1)
        if pool == "last":
            return h[:, -1]
        raise ValueError(f"pool must be 'mean' or 'last', got {pool!r}")
