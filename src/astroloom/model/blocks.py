"""The transformer block every astroloom model is built from: pre-norm, scaled-dot-product
attention (causal, or bidirectional over the keys a mask marks present) and a GELU MLP."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from astroloom.config import ModelConfig


class SelfAttention(nn.Module):
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

    def weights(
        self, x: torch.Tensor, causal: bool = True, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The attention probabilities ``(B, heads, T, T)`` that :meth:`forward` applies to
        ``x`` (computed explicitly: the fused kernel never forms them). For attention maps."""
        b, t, c = x.shape
        q, k, _ = self.qkv(x).split(c, dim=2)
        q, k = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k))
        scores = q @ k.transpose(-1, -2) / math.sqrt(c // self.n_head)
        if causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        elif key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)


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
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, causal: bool = True, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal, key_mask)
        return x + self.mlp(self.ln_2(x))
