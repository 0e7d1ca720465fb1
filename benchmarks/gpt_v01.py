"""astroloom 0.1's image-only next-patch GPT, kept here only as the speed reference for
benchmarks/vs_astropt.py: the issue that made one model class of it asked that the one
model train and embed within 5 % of this one. Not part of the package."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from astroloom.config import ModelConfig
from astroloom.model.blocks import Block


def next_patch_error(pred: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean Huber error of predicting patch t+1 at t."""
    return F.huber_loss(pred[:, :-1], tokens[:, 1:])


class ImageGPT(nn.Module):
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
            x = block(x)
            states.append(x)
        return states

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prediction of the next patch at every position: ``(B, N, patch_dim)``."""
        return self.decoder(self.ln_f(self.hidden_states(tokens)[-1]))

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
