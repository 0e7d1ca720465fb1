"""The foundation model: one transformer over image, spectrum, photometry and light-curve
tokens, readable top to bottom. It is astroloom's only model: ``model.modalities =
["image"]`` makes it an image-only next-patch model, a longer list a multimodal one.

Each modality has a value encoder (values → width), a position embedding (Fourier
features of its physical coordinates, and/or a learned embedding of its field) and a
decoder head. The tokens an object has are concatenated into one sequence; a modality
the object lacks is simply absent (absent tokens sort to the end of the sequence, where
causal attention never looks at them and bidirectional attention masks them).

Two surrogate tasks, chosen by ``model.objective``:

* **autoregressive**: predict every token from the ones before it, with the order of the
  modalities drawn at random per object, so any modality learns to follow any other. A
  token's input carries its own position and the position of the token to be predicted
  next (its wavelength, time, sky offset), so the model knows *what* it is asked for.
* **masked**: hide a share of the tokens (and, for half the objects, one whole modality)
  and predict them with bidirectional attention.
* **mixed**: one or the other, drawn per training step.

Losses are Huber on the normalised values, summed per modality with the counts returned
beside them, so that micro-batches and ranks combine into the exact batch mean.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from astroloom.config import MODALITIES, ModelConfig
from astroloom.model.blocks import Block
from astroloom.tokenize.image import ORIENTATIONS, check_orientations, orient_tokens
from astroloom.tokenize.spectrum import stretch_tokens
from astroloom.tokenize.tokens import ModalityTokens

# How an object's token states become one vector: their mean; their mean and their spread
# (standard deviation over the tokens: where the light is, and how much it varies — the
# shape and size information a mean dilutes; measured in docs/benchmarks.md, "Pooling");
# those two and the image's quadrupole moments ("moments", below); those and the image's
# radial profile ("radial", below); or the state after the last token.
POOLS = ("mean", "meanstd", "moments", "radial", "last")
# "moments": for each channel, the size of angular moments of the token states over the
# image patches near the cutout's centre: the quadrupole (m = 2) within 1 and within 2.2
# patch pitches (an even grid: its central 2 × 2 and 4 × 4 patches) and the dipole (m = 1)
# within 1. An elongated galaxy makes its states differ between patches along and across
# its axis, a lopsided or off-centre one between opposite sides; the moments' sizes measure
# that whatever the position angle, which a mean or a spread cannot (reference run, 300
# labels: ellipticity R² 0.29 → 0.52; docs/benchmarks.md, "Pooling").
MOMENTS = ((1.0, 2), (2.2, 2), (1.0, 1))  # (disc radius in patch pitches, order m)
# "radial": the "moments" vector (unchanged, first) and the order m = 0 beside it: per
# channel, the mean state of the image patches within 1 and within 1.6 patch pitches of the
# cutout's centre less the mean over all image patches — how the states change from the
# core outwards, which no angular moment sees, and where a ring (light at 0.7–1.4 pitches
# about a faint core) differs from its host. An option for anomaly searches, not a default:
# rings stood out more with every model tried and k-NN scores rose throughout, but the
# local outlier factor rose for one model (reference recipe, two surveys: ROC-AUC +0.003 to
# +0.004) and fell for two others, losing foreground stars (docs/benchmarks.md,
# "Anomalies: the radial profile").
RADIAL = (1.0, 1.6)
# model.align: the shared space's width and the InfoNCE temperature (AstroCLIP's scale).
ALIGN_DIM = 64
ALIGN_TEMPERATURE = 0.1
# model.spectrum_shift: the largest stretch of a view, as log10 of the factor on (1 + z)
# (±4.7 %: a few spectrum tokens at 64 Å each), and how many spectra a step uses (two more
# passes through half the blocks each).
SHIFT_MAX = 0.02
SHIFT_ROWS = 16
# model.keep_shape: the Gaussian apertures (σ in pixels) of the two ellipticities, the radii
# (pixels) whose enclosed light the concentration compares, and the aperture of the mean
# radius: the mock galaxies' half-light radii span 1–8 pixels.
SHAPE_SIGMAS = (2.0, 5.0)
SHAPE_CONCENTRATION = (3.0, 10.0)
SHAPE_APERTURE = 16.0
SHAPE_STATISTICS = len(SHAPE_SIGMAS) + 2
# The pooling of every embedding product (files, probes, bench, export, maps).
EMBED_POOL = "moments"
# Every embedding product also averages an image's vector over the cutout's four quarter
# turns, so that a galaxy's position angle does not move it: on the reference-colours run,
# the 10-neighbour anomaly score rose from ROC-AUC 0.817 to 0.949, morphology at 100 labels
# from macro-F1 0.926 to 0.939, ellipticity at 100 labels from R² 0.421 to 0.477; the four
# mirrored turns as well (8) added at most 0.008 for twice the time (docs/benchmarks.md,
# "Orientations"). 1 embeds the cutout as it lies, as training and the simulator's
# conditioning always do.
EMBED_ORIENTATIONS = 4
# Modalities whose token states enter the spread (and so the moments pooling) by their mean
# only: the spread half of an object with nothing else is zero.
MEAN_ONLY = frozenset({"lightcurve"})


class ModalityError(ValueError):
    """A modality the model was not built for, or a batch it cannot read."""


@dataclass(frozen=True)
class ModalitySpec:
    value_dim: int  # values per token
    coords: int  # continuous position coordinates per token
    periods: tuple[float, float]  # shortest and longest Fourier period of the coordinates
    n_fields: int  # discrete fields (bands, catalogue columns); 0 for none
    n_context: int = 0  # per-object context values (an image's brightness), NaN = unknown
    phase: bool = False  # a second coordinate in [0, 1): phase at the object's period


def modality_specs(cfg: ModelConfig) -> dict[str, ModalitySpec]:
    """What each modality's tokens look like under this config."""
    specs = {
        # Sky offsets in arcsec: from sub-patch detail to well beyond a large cutout.
        "image": ModalitySpec(
            cfg.patch_dim,
            2,
            (0.5, 100.0),
            0,
            (1 + (cfg.n_bands - 1) * cfg.image_colours) if cfg.image_norm == "object" else 0,
        ),
        # log10 wavelength: from about one patch (0.003 dex) to the whole optical range.
        "spectrum": ModalitySpec(
            cfg.spectrum_patch, 1, (0.003, 2.0), 0, 1 if cfg.spectrum_norm == "object" else 0
        ),
        "photometry": ModalitySpec(1, 0, (1.0, 1.0), cfg.n_bands),
        # Days: from δ Scuti periods (~1 h) to multi-season baselines.
        "lightcurve": ModalitySpec(
            1,
            2 if cfg.lightcurve_phase else 1,
            (0.04, 4000.0),
            cfg.lightcurve_bands,
            3 if cfg.lightcurve_phase else 0,
            cfg.lightcurve_phase,
        ),
    }
    return {m: specs[m] for m in cfg.modalities}


def shared_rows(t: torch.Tensor | None) -> bool:
    """True when ``t`` is one row broadcast over the batch (a stride-0 view): the work done
    per object on it can be done once."""
    return t is not None and t.shape[0] > 0 and t.stride(0) == 0


class PositionEmbedding(nn.Module):
    """Fourier features of continuous coordinates (fixed, log-spaced periods, so positions
    never seen in training still embed smoothly) plus a learned embedding per field.

    Sky positions are projected on four directions (0°, 45°, 90°, 135°) before the waves
    are taken: waves along x and y alone would give every patch an embedding of the form
    f(x) + g(y), which cannot tell a galaxy elongated along one diagonal from the other."""

    def __init__(self, spec: ModalitySpec, width: int, n_freq: int = 16) -> None:
        super().__init__()
        self.spec = spec
        self.width = width
        if spec.coords:
            short, long = spec.periods
            periods = torch.logspace(math.log10(short), math.log10(long), n_freq)
            self.register_buffer("freq", 2 * math.pi / periods, persistent=False)
            if spec.phase:  # time, then phase: harmonics 1…8 of the period, exactly periodic
                directions = torch.eye(1)
                self.register_buffer(
                    "harmonics", 2 * math.pi * torch.arange(1.0, 9.0), persistent=False
                )
            elif spec.coords == 2:
                angles = torch.tensor([0.0, 0.25, 0.5, 0.75]) * math.pi
                directions = torch.stack([angles.cos(), angles.sin()], dim=1)
            else:
                directions = torch.eye(spec.coords)
            self.register_buffer("directions", directions, persistent=False)
            extra = 2 * 8 if spec.phase else 0
            self.proj = nn.Linear(2 * n_freq * len(directions) + extra, width)
        if spec.n_fields:
            self.field = nn.Embedding(spec.n_fields, width)

    def forward(self, tokens: ModalityTokens) -> torch.Tensor:
        """``(B, N, width)``; ``(1, N, width)`` broadcast over the batch when every object
        shares its positions and has no fields (an image's patch grid), computed once."""
        b, n = tokens.present.shape
        shared = shared_rows(tokens.position) and not self.spec.n_fields
        out = tokens.values.new_zeros(1 if shared else b, n, self.width)
        if self.spec.coords:
            if tokens.position is None or tokens.position.shape[-1] != self.spec.coords:
                raise ModalityError(f"tokens need {self.spec.coords} position coordinate(s)")
            position = (tokens.position[:1] if shared else tokens.position).float()
            if self.spec.phase:
                along = position[..., :1] @ self.directions.T
            else:
                along = position @ self.directions.T  # (B, N, directions)
            angle = along[..., None] * self.freq  # (B, N, directions, F)
            waves = [angle.sin(), angle.cos()]
            if self.spec.phase:
                turn = position[..., 1:2] * self.harmonics  # (B, N, 8)
                waves += [turn.sin()[..., None, :], turn.cos()[..., None, :]]
                waves = [w.flatten(2) for w in waves]
                out = out + self.proj(torch.cat(waves, -1))
            else:
                out = out + self.proj(torch.cat(waves, -1).flatten(2))
        if self.spec.n_fields:
            if tokens.field is None:
                raise ModalityError("tokens need a field index (band or catalogue column)")
            out = out + self.field(tokens.field)
        return out


class ContextEmbedding(nn.Module):
    """Per-object context values (the brightness an image's per-object normalisation took
    out) as one vector added to each of the modality's value embeddings: Fourier features
    of every known value, and a learned "unknown" vector where a value is NaN (a flux unit
    nobody recorded), so the model reads the same cutout with or without it."""

    def __init__(self, n_context: int, width: int, n_freq: int = 8) -> None:
        super().__init__()
        periods = torch.logspace(math.log10(0.5), math.log10(20.0), n_freq)
        self.register_buffer("freq", 2 * math.pi / periods, persistent=False)
        self.n_context = n_context
        self.proj = nn.Linear(2 * n_freq * n_context, width)
        self.unknown = nn.Parameter(torch.zeros(n_context, width))

    def forward(self, context: torch.Tensor | None, b: int) -> torch.Tensor:
        """``(B, K)`` values (None: all unknown) → ``(B, 1, width)``."""
        if context is None:
            context = torch.full((b, self.n_context), float("nan"), device=self.unknown.device)
        context = context.to(self.unknown.device, torch.float32)
        if context.shape != (b, self.n_context):
            raise ModalityError(
                f"context must have shape ({b}, {self.n_context}); got {tuple(context.shape)}"
            )
        known = torch.isfinite(context)
        angle = torch.nan_to_num(context)[..., None] * self.freq
        waves = torch.cat([angle.sin(), angle.cos()], -1) * known[..., None]
        out = self.proj(waves.flatten(1)) + (~known).to(self.unknown.dtype) @ self.unknown
        return out[:, None]


@dataclass
class Plan:
    """What one step asks of the model, drawn for the whole global batch so that it can
    be split into micro-batches and ranks without changing the loss."""

    objective: str  # "autoregressive" or "masked"
    rank: torch.Tensor | None = None  # (B, n_modalities): order of the modalities
    mask: dict[str, torch.Tensor] | None = None  # modality → (B, N) tokens to predict

    def take(self, index: torch.Tensor | slice) -> Plan:
        return Plan(
            self.objective,
            None if self.rank is None else self.rank[index],
            None if self.mask is None else {m: v[index] for m, v in self.mask.items()},
        )


@dataclass
class Sequence:
    """One batch laid out as a single token sequence (absent tokens at the end)."""

    values: torch.Tensor  # (B, T, D) value embeddings
    query: torch.Tensor  # (B, T, D) position + modality embeddings
    present: torch.Tensor  # (B, T)
    modality: torch.Tensor  # (B, T) index into the model's modalities
    source: torch.Tensor  # (B, T) token index within its modality
    hidden: torch.Tensor | None  # (B, T) masked objective: tokens whose value is hidden
    # One modality, every token present, in its own order: slot t is token t.
    identity: bool = False


def patch_pitch(x: torch.Tensor) -> torch.Tensor:
    """The image patches' spacing, in the units of ``x``, the x positions of an image's
    tokens: an even grid's nearest column lies half a pitch off centre, an odd grid's
    central column on it. Plain tensor operations, no unique() or atan2(), so that
    the pooling exports to ONNX."""
    ax = x.abs()
    nearest = ax.min()
    off_centre = torch.where(ax > 1e-6 * ax.max(), ax, torch.full_like(ax, math.inf)).min()
    return torch.where(nearest > 1e-6 * ax.max(), 2 * nearest, off_centre)


def shape_statistics(image: ModalityTokens, n_bands: int) -> torch.Tensor:
    """``(B, SHAPE_STATISTICS)`` rotation-invariant statistics of each cutout's light (its
    token values summed over bands, negative values clipped), about the cutout's centre:
    the ellipticity |e| = |Q₁₁ − Q₂₂ + 2iQ₁₂| / (Q₁₁ + Q₂₂) of the second moments within
    each Gaussian aperture of :data:`SHAPE_SIGMAS`, log₁₀ of the light within the inner
    radius of :data:`SHAPE_CONCENTRATION` over that within the outer, and log₁₀ of the
    light-weighted mean radius within :data:`SHAPE_APERTURE` (pixels)."""
    b, n, v = image.values.shape
    p = int(round((v // n_bands) ** 0.5))
    valid = image.valid.expand(b, n, v).reshape(b, n, p * p, n_bands).any(-1)
    light = image.values.float().reshape(b, n, p * p, n_bands).sum(-1).clamp_min(0.0)
    light = light * valid * image.present[..., None]
    pos = image.position.float().expand(b, n, 2)
    pitch = patch_pitch(pos[0, :, 0])  # a pixel is a pitch over p
    offset = torch.arange(p, dtype=torch.float32, device=light.device) + 0.5 - p / 2
    dy, dx = torch.meshgrid(offset, offset, indexing="ij")  # a token's values run (y, x, band)
    x = pos[..., :1] * (p / pitch) + dx.reshape(1, 1, -1)
    y = pos[..., 1:] * (p / pitch) + dy.reshape(1, 1, -1)
    r2 = x**2 + y**2
    tiny = 1e-6
    out = []
    for sigma in SHAPE_SIGMAS:
        w = light * torch.exp(-r2 / (2 * sigma**2))
        q11, q22, q12 = ((w * q).sum((1, 2)) for q in (x * x, y * y, x * y))
        out.append(((q11 - q22) ** 2 + 4 * q12**2).sqrt() / (q11 + q22 + tiny))
    inner, outer = ((light * (r2 <= r**2)).sum((1, 2)) for r in SHAPE_CONCENTRATION)
    out.append(torch.log10((inner + tiny) / (outer + tiny)))
    w = light * (r2 <= SHAPE_APERTURE**2)
    out.append(torch.log10((w * r2.sqrt()).sum((1, 2)) / (w.sum((1, 2)) + tiny) + tiny))
    return torch.stack(out, dim=1)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x with zero where x is zero: sqrt(0) has an infinite slope, and a zero spread or
    moment (an absent modality, a single token) must keep gradients finite (attribution)."""
    return torch.where(x > 0, x, torch.ones_like(x)).sqrt() * (x > 0)


class MultimodalModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.modalities = [m for m in MODALITIES if m in cfg.modalities]
        self.specs = modality_specs(cfg)
        d = cfg.n_embd
        self.encoders = nn.ModuleDict({m: nn.Linear(s.value_dim, d) for m, s in self.specs.items()})
        self.positions = nn.ModuleDict({m: PositionEmbedding(s, d) for m, s in self.specs.items()})
        self.contexts = nn.ModuleDict(
            {m: ContextEmbedding(s.n_context, d) for m, s in self.specs.items() if s.n_context}
        )
        self.modality_embedding = nn.Embedding(len(self.modalities), d)
        self.next_query = nn.Linear(d, d)  # "the token to predict next is …"
        self.bos = nn.Parameter(torch.zeros(d))
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.decoders = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, s.value_dim))
                for m, s in self.specs.items()
            }
        )
        # Training-only read-outs of each object's context values (model.keep_context).
        self.context_heads = nn.ModuleDict(
            {m: nn.Linear(d, self.specs[m].n_context) for m in cfg.keep_context}
        )
        # Training-only projections of the image and spectrum embeddings (model.align).
        self.align_heads = nn.ModuleDict(
            {
                "image": nn.Linear(self.embedding_dim("moments"), ALIGN_DIM),
                "spectrum": nn.Linear(self.embedding_dim("meanstd"), ALIGN_DIM),
            }
            if cfg.align
            else {}
        )
        # Training-only read-out of the stretch between two views (model.spectrum_shift).
        self.shift_head = (
            nn.Linear(self.embedding_dim("meanstd"), 1, bias=False) if cfg.spectrum_shift else None
        )
        # Training-only read-out of each cutout's shape statistics (model.keep_shape).
        self.shape_head = (
            nn.Linear(self.embedding_dim("moments"), SHAPE_STATISTICS) if cfg.keep_shape else None
        )
        self.activation_checkpointing = False
        self.apply(self._init_weights)
        nn.init.normal_(self.bos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    # ----------------------------------------------------------------- bookkeeping
    def num_parameters(self, non_embedding: bool = False) -> int:
        if not non_embedding:
            return sum(p.numel() for p in self.parameters())
        return sum(p.numel() for p in self.blocks.parameters()) + sum(
            p.numel() for p in self.ln_f.parameters()
        )

    def flops_per_token(self, context: int | None = None) -> float:
        """Training FLOPs per token: 6 × the weights one token passes through (the backbone
        and, on average, one modality's encoder, position embedding and decoder) plus the
        attention scores over a ``context`` of tokens."""
        ctx = context or self.cfg.max_tokens
        own = [
            sum(
                p.numel()
                for part in (self.encoders, self.positions, self.decoders)
                for p in part[m].parameters()
            )
            for m in self.modalities
        ]
        per_token = self.num_parameters(non_embedding=True) + sum(
            p.numel() for p in self.next_query.parameters()
        )
        per_token += sum(own) / len(own)
        return 6.0 * per_token + 6.0 * self.cfg.n_layer * ctx * self.cfg.n_embd

    def default_layer(self) -> int:
        return (self.cfg.n_layer + 1) // 2

    def embedding_dim(self, pool: str = "mean") -> int:
        """Length of an embedding vector pooled with ``pool``."""
        width = self.cfg.n_embd
        if pool in ("moments", "radial"):
            terms = len(MOMENTS) + (len(RADIAL) if pool == "radial" else 0)
            return (2 + terms * ("image" in self.modalities)) * width
        return 2 * width if pool == "meanstd" else width

    def check(self, batch: dict[str, ModalityTokens]) -> int:
        """Validate a batch; return its size."""
        if not batch:
            raise ModalityError("empty batch: no modality given")
        unknown = [m for m in batch if m not in self.specs]
        if unknown:
            raise ModalityError(
                f"this model was trained on {self.modalities}; it cannot read {unknown} "
                "(train a model with those modalities in model.modalities)"
            )
        sizes = {m: t.batch_size for m, t in batch.items()}
        if len(set(sizes.values())) != 1 or 0 in sizes.values():
            raise ModalityError(f"every modality needs the same, non-zero batch size; got {sizes}")
        for m, t in batch.items():
            if t.values.shape[-1] != self.specs[m].value_dim:
                raise ModalityError(
                    f"{m} tokens have {t.values.shape[-1]} values each; this model reads "
                    f"{self.specs[m].value_dim}"
                )
        return next(iter(sizes.values()))

    # ------------------------------------------------------------------ planning
    def draw_plan(
        self, batch: dict[str, ModalityTokens], objective: str, generator: torch.Generator
    ) -> Plan:
        """Random modality order (autoregressive) or random hidden tokens (masked)."""
        b = self.check(batch)
        if objective == "mixed":
            objective = "autoregressive" if torch.rand(1, generator=generator) < 0.5 else "masked"
        if objective == "autoregressive":
            keys = torch.rand(b, len(self.modalities), generator=generator)
            return Plan(objective, rank=keys.argsort(1).argsort(1))
        mask = {
            m: (torch.rand(t.present.shape, generator=generator) < self.cfg.mask_ratio)
            & t.present.cpu()
            for m, t in batch.items()
        }
        # For half the objects with two or more modalities, hide one whole modality: the
        # cross-modal task ("predict the spectrum from the image") that predict() serves.
        names = list(batch)
        has = torch.stack([batch[m].present.any(1).cpu() for m in names], 1)  # (B, M)
        pick = (torch.rand(b, len(names), generator=generator) * has).argmax(1)
        whole = (torch.rand(b, generator=generator) < 0.5) & (has.sum(1) >= 2)
        for j, m in enumerate(names):
            mask[m] |= (whole & (pick == j))[:, None] & batch[m].present.cpu()
        return Plan(objective, mask=mask)

    def canonical_plan(self, batch: dict[str, ModalityTokens], objective: str) -> Plan:
        b = self.check(batch)
        if objective == "masked":
            return Plan("masked", mask={m: torch.zeros_like(t.present) for m, t in batch.items()})
        return Plan("autoregressive", rank=torch.arange(len(self.modalities)).expand(b, -1))

    def target_counts(self, batch: dict[str, ModalityTokens], plan: Plan) -> dict[str, float]:
        """Number of valid values each modality contributes to the loss under ``plan``."""
        counts = {}
        for m, t in batch.items():
            targets = (
                t.present
                if plan.objective == "autoregressive"
                else plan.mask[m].to(t.present.device)
            )
            counts[m] = float((t.valid & targets[..., None]).sum())
        return counts

    # ------------------------------------------------------------------ forward
    def _sequence(self, batch: dict[str, ModalityTokens], plan: Plan) -> Sequence:
        b = self.check(batch)
        device = self.bos.device
        if len(batch) == 1 and next(iter(batch.values())).dense:
            return self._single_modality(batch, plan, b, device)
        values, queries, present, modality, source, hidden = [], [], [], [], [], []
        for j, m in enumerate(self.modalities):
            if m not in batch:
                continue
            t = batch[m].to(device)
            n = t.n_tokens
            values.append(self._values(m, t, b))
            query = self.positions[m](t) + self.modality_embedding.weight[j]
            queries.append(query.expand(b, -1, -1))
            present.append(t.present)
            modality.append(torch.full((b, n), j, device=device))
            source.append(torch.arange(n, device=device).expand(b, n))
            if plan.objective == "masked":
                hidden.append(plan.mask[m].to(device) & t.present)
        cat = lambda parts: torch.cat(parts, dim=1)  # noqa: E731
        present_all, modality_all = cat(present), cat(modality)
        rank = (
            plan.rank.to(device)
            if plan.rank is not None
            else torch.arange(len(self.modalities), device=device).expand(b, -1)
        )
        # Present tokens first, in the plan's modality order; within a modality, in order.
        key = (~present_all).long() * len(self.modalities) + rank.gather(1, modality_all)
        order = torch.argsort(key, dim=1, stable=True)
        length = int(present_all.sum(1).max())
        if length > self.cfg.max_tokens:
            raise ModalityError(
                f"an object has {length} tokens, more than the model's context "
                f"(model.max_tokens = {self.cfg.max_tokens})"
            )
        order = order[:, : max(length, 1)]

        def gather(x: torch.Tensor) -> torch.Tensor:
            idx = order if x.ndim == 2 else order[..., None].expand(-1, -1, x.shape[-1])
            return x.gather(1, idx)

        return Sequence(
            gather(cat(values)),
            gather(cat(queries)),
            gather(present_all),
            gather(modality_all),
            gather(cat(source)),
            gather(cat(hidden)) if hidden else None,
        )

    def _values(self, m: str, t: ModalityTokens, b: int) -> torch.Tensor:
        """Value embeddings of one modality's tokens, with its per-object context added."""
        x = self.encoders[m](t.values if t.dense else t.values * t.valid)
        if m in self.contexts:
            x = x + self.contexts[m](t.context, b)
        return x

    def _single_modality(
        self, batch: dict[str, ModalityTokens], plan: Plan, b: int, device: torch.device
    ) -> Sequence:
        """The sequence of a dense batch of one modality: the tokens' own order, no masks,
        sorting or gathering, positions shared over the batch kept shared (an image-only
        model's batches of complete cutouts; measured in benchmarks/vs_astropt.py)."""
        (m,) = batch
        t = batch[m].to(device)
        n = t.n_tokens
        if n > self.cfg.max_tokens:
            raise ModalityError(
                f"an object has {n} tokens, more than the model's context "
                f"(model.max_tokens = {self.cfg.max_tokens})"
            )
        j = self.modalities.index(m)
        query = self.positions[m](t) + self.modality_embedding.weight[j]
        return Sequence(
            self._values(m, t, b),
            query.expand(b, -1, -1),
            t.present,
            torch.full((b, n), j, device=device),
            torch.arange(n, device=device).expand(b, n),
            plan.mask[m].to(device) & t.present if plan.objective == "masked" else None,
            identity=True,
        )

    def _run(
        self, x: torch.Tensor, causal: bool, key_mask: torch.Tensor | None, upto: int | None = None
    ) -> list[torch.Tensor]:
        x = self.drop(x)
        states = [x]
        for block in self.blocks[: upto if upto is not None else len(self.blocks)]:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, causal, key_mask, use_reentrant=False)
            else:
                x = block(x, causal, key_mask)
            states.append(x)
        return states

    def _inputs(self, seq: Sequence, objective: str, predict_only: bool = False) -> torch.Tensor:
        """The residual stream's first state. Autoregressive: slot 0 is a learned start
        token and slot j+1 holds token j, every slot also carrying the position of the token
        it must predict; ``predict_only`` leaves out the slot after the last token, which
        predicts nothing (causal attention: the other slots are unchanged). Training
        sequences then keep their natural length (64 patches, not 65), which the blocked
        attention kernels reward (benchmarks/vs_astropt.py)."""
        if objective == "masked":
            shown = torch.where(seq.hidden[..., None], self.mask_token, seq.values)
            return shown + seq.query
        if shared_rows(seq.query):  # one modality, all present: once for the whole batch
            nxt = self.next_query(seq.query[:1])
        else:
            nxt = self.next_query(seq.query) * seq.present[..., None]
        start = (self.bos + nxt[:, 0])[:, None].expand(seq.values.shape[0], -1, -1)
        if predict_only:
            follow = seq.values[:, :-1] + (seq.query[:, :-1] + nxt[:, 1:])
        else:
            follow = seq.values + (seq.query + F.pad(nxt[:, 1:], (0, 0, 0, 1)))
        return torch.cat([start, follow], dim=1)

    def hidden_states(
        self, batch: dict[str, ModalityTokens], plan: Plan, upto: int | None = None
    ) -> tuple[list[torch.Tensor], Sequence]:
        """Residual streams (index 0 embeddings, then after each block), aligned with the
        sequence's tokens, and the sequence itself."""
        seq = self._sequence(batch, plan)
        causal = plan.objective == "autoregressive"
        states = self._run(
            self._inputs(seq, plan.objective), causal, None if causal else seq.present, upto
        )
        if causal:
            # Slot j has read tokens < j and predicts token j; its state after the last
            # token is dropped. For embeddings, shift to the state *after* reading token j.
            states = [s[:, 1:] for s in states]
        return states, seq

    @torch.no_grad()
    def attention(
        self, batch: dict[str, ModalityTokens], upto: int | None = None
    ) -> tuple[list[torch.Tensor], Sequence]:
        """Attention probabilities ``(B, heads, T, T)`` of each block up to ``upto`` under the
        embedding plan, over the slots of :meth:`hidden_states` (the autoregressive start
        slot left out and the rows renormalised), and the sequence: what an object's
        embedding draws on (attention rollout, ``astroloom explain``)."""
        plan = self.canonical_plan(batch, self.embedding_objective())
        seq = self._sequence(batch, plan)
        causal = plan.objective == "autoregressive"
        key_mask = None if causal else seq.present
        x = self._inputs(seq, plan.objective)
        maps = []
        for block in self.blocks[: upto if upto is not None else len(self.blocks)]:
            a = block.attn.weights(block.ln_1(x), causal, key_mask)
            if causal:
                a = a[..., 1:, 1:]
                a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
            maps.append(a)
            x = block(x, causal, key_mask)
        return maps, seq

    def predictions(
        self, batch: dict[str, ModalityTokens], plan: Plan
    ) -> tuple[Sequence, torch.Tensor]:
        """Final normalised states that predict each token, and the sequence."""
        seq = self._sequence(batch, plan)
        causal = plan.objective == "autoregressive"
        x = self._inputs(seq, plan.objective, predict_only=True)
        h = self._run(x, causal, None if causal else seq.present)[-1]
        return seq, self.ln_f(h)

    def forward(
        self, batch: dict[str, ModalityTokens], plan: Plan, delta: float = 1.0
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per modality: (sum of Huber errors, number of valid target values)."""
        seq, h = self.predictions(batch, plan)
        targets = seq.present if plan.objective == "autoregressive" else seq.hidden
        out = {}
        if seq.identity and plan.objective == "autoregressive":
            # Every slot predicts its own token: no selection or gathering needed.
            ((m, tokens),) = batch.items()
            tokens = tokens.to(h.device)
            pred = self.decoders[m](h)
            err = F.huber_loss(pred.float(), tokens.values.float(), reduction="none", delta=delta)
            out[m] = (err.sum(), torch.tensor(float(err.numel()), device=err.device))
        for j, m in enumerate(self.modalities):
            if m in out:
                continue
            if m not in batch:
                continue
            sel = targets & (seq.modality == j)
            rows, slots = sel.nonzero(as_tuple=True)
            tokens = batch[m].to(h.device)
            src = seq.source[rows, slots]
            pred = self.decoders[m](h[rows, slots])
            target, valid = tokens.values[rows, src], tokens.valid[rows, src]
            err = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
            mask = valid.to(err.dtype)
            out[m] = ((err * mask).sum(), mask.sum())
        if self.training and len(self.context_heads):
            for m, err in self._context_errors(batch, delta).items():
                if m in out:
                    out[m] = (out[m][0] + err * out[m][1], out[m][1])
        # The image's extra training terms ride on its mean error, weighted by the config.
        shared: dict = {}  # the terms that read the image-only embeddings share one pass
        extras = (
            (self.cfg.invariance, lambda: self._invariance_error(batch["image"])),
            (self.cfg.align, lambda: self._alignment_error(batch, shared)),
            (self.cfg.keep_shape, lambda: self._shape_error(batch["image"], shared)),
        )
        for weight, term in extras:
            err = term() if self.training and weight and "image" in out else None
            if err is not None:
                out["image"] = (out["image"][0] + weight * err * out["image"][1], out["image"][1])
        if self.training and self.cfg.spectrum_shift and "spectrum" in out:
            err = self._shift_error(batch["spectrum"])
            if err is not None:
                total, count = out["spectrum"]
                out["spectrum"] = (total + self.cfg.spectrum_shift * err * count, count)
        # Give every parameter a gradient each step, zero where this step did not use it
        # (the mask token in an autoregressive step, a modality absent from the batch): the
        # optimizer then treats all parameters alike whatever the step held, which keeps
        # ranks, micro-batches and resumed runs on the same trajectory.
        first = next(iter(out))
        idle = sum(
            p.reshape(-1)[0] for n, p in self.named_parameters() if not n.startswith("blocks.")
        )
        out[first] = (out[first][0] + 0.0 * idle, out[first][1])
        return out

    def _context_errors(
        self, batch: dict[str, ModalityTokens], delta: float
    ) -> dict[str, torch.Tensor]:
        """Per kept modality, the mean Huber error of its context values read back linearly
        from the mean of its token states at the embedding layer, under the embedding plan.
        A context the embedding has to carry stays linearly readable from a few labels:
        without it pretraining blurs the period the tokenizer hands in (light-curve-only
        models: log-period R² at 10 labels 0.44 without, 0.91 with; docs/benchmarks.md,
        "Keeping the period in the embedding")."""
        # Only the objects with a kept context go through this second pass: in a survey of
        # many galaxies and fewer stars it would otherwise cost a whole extra forward a step.
        keep = [m for m in self.context_heads if m in batch and batch[m].context is not None]
        if not keep:
            return {}
        # Batches are shuffled, so each modality's first objects are a random draw; taking
        # them (not a fresh random one) keeps resumed runs on the same trajectory.
        cap = self.cfg.keep_context_rows or None
        rows = torch.cat(
            [batch[m].present.any(1).nonzero()[:cap, 0].cpu() for m in keep]
        ).unique()
        if not len(rows):
            return {}
        if len(rows) < next(iter(batch.values())).batch_size:
            batch = {m: t.take(rows) for m, t in batch.items()}
        layer = self.default_layer()
        states, seq = self.hidden_states(
            batch, self.canonical_plan(batch, self.embedding_objective()), upto=layer
        )
        h = states[layer]
        out = {}
        for m in keep:
            head = self.context_heads[m]
            w = (seq.present & (seq.modality == self.modalities.index(m)))[..., None].to(h.dtype)
            n = w.sum(1)
            mean = (h * w).sum(1) / n.clamp_min(1.0)
            context = batch[m].context.to(h.device, torch.float32)
            known = (torch.isfinite(context) & (n > 0)).to(torch.float32)
            err = F.huber_loss(
                head(mean).float(), torch.nan_to_num(context), reduction="none", delta=delta
            )
            out[m] = (err * known).sum() / known.sum().clamp_min(1.0)
        return out

    def _invariance_error(self, image: ModalityTokens) -> torch.Tensor | None:
        """How far apart the image-only embeddings of two views of each galaxy lie: the
        cutout as given, and turned (one of the seven other orientations) with as much
        noise again as the object normalisation's softening. Per embedding dimension, the
        mean squared difference over the batch divided by the dimension's variance over the
        batch (≈ 2 (1 − correlation)), averaged over dimensions: shrinking every dimension
        to a constant does not lower it. None with fewer than two images."""
        rows = image.present.any(1).nonzero()[:, 0].cpu()
        if len(rows) < 2:
            return None
        if len(rows) < image.batch_size:
            image = image.take(rows)
        # The view is drawn from the batch's own values, not the global generator, so that
        # a resumed run sees the same views as an uninterrupted one.
        seed = int(image.values.detach().abs().sum().double().item() * 1e3) % (2**31)
        g = torch.Generator().manual_seed(seed)
        turns, mirror = ORIENTATIONS[int(torch.randint(1, len(ORIENTATIONS), (1,), generator=g))]
        turned = orient_tokens(image, turns, mirror, self.cfg.patch_size, self.cfg.n_bands)
        noise = torch.randn(turned.values.shape, generator=g).to(turned.values)
        # Token values are asinh(flux / softening): add the noise in flux, where it lives.
        values = torch.asinh(torch.sinh(turned.values) + noise * turned.valid.to(noise))
        views = [image, dataclasses.replace(turned, values=values)]
        z1, z2 = (self._pooled_once({"image": v}, None, "moments").float() for v in views)
        scale = 0.5 * (z1.var(0) + z2.var(0)) + 1e-4
        return (((z1 - z2) ** 2).mean(0) / scale).mean()

    def _shift_error(self, spectrum: ModalityTokens) -> torch.Tensor | None:
        """Squared error of the stretch between two views of each spectrum, read linearly off
        the difference of their spectrum-only embeddings (mean and spread of the token
        states at the embedding layer), in units of the largest stretch. Both views are
        stretched (so both are interpolated alike) by independent amounts within
        ±``SHIFT_MAX`` and cut to one wavelength range that neither stretch reaches past,
        narrowed by a further random 0–3 % at each end, so that where a view's data end
        says nothing of its stretch. None without a spectrum in the batch."""
        rows = spectrum.present.sum(1) >= 2
        rows = rows.nonzero()[:SHIFT_ROWS, 0].cpu()
        if not len(rows):
            return None
        spectrum = spectrum.take(rows)
        b = len(rows)
        # Drawn from the batch's own values, as the invariance term's views are: a resumed
        # run sees the same views.
        seed = int(spectrum.values.detach().abs().sum().double().item() * 1e3) % (2**31)
        g = torch.Generator().manual_seed(seed)
        shifts = (torch.rand(2, b, generator=g, dtype=torch.float64) * 2 - 1) * SHIFT_MAX
        margin = torch.rand(2, b, generator=g, dtype=torch.float64) * 0.03
        pos = spectrum.position[..., 0].double().cpu()
        present = spectrum.present.cpu()
        first = torch.where(present, pos, torch.full_like(pos, math.inf)).amin(1)
        last = torch.where(present, pos, torch.full_like(pos, -math.inf)).amax(1)
        low = torch.pow(10.0, first + SHIFT_MAX) * (1 + margin[0])
        high = torch.pow(10.0, last - SHIFT_MAX) * (1 - margin[1])
        device = spectrum.values.device
        views = [
            stretch_tokens(spectrum, s.to(device), low.to(device), high.to(device))
            for s in shifts
        ]
        z1, z2 = (self._pooled_once({"spectrum": v}, None, "meanstd").float() for v in views)
        pred = self.shift_head(z2 - z1)[:, 0]
        target = ((shifts[1] - shifts[0]) / SHIFT_MAX).to(pred)
        return ((pred - target) ** 2).mean()

    def _image_only(
        self, image: ModalityTokens, shared: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The objects that have an image (indices into the batch, ascending) and their
        image-only embeddings (moments pooling at the embedding layer, what the probes
        read); kept in ``shared`` so that the training terms that read them share a pass."""
        if shared is not None and "image" in shared:
            return shared["image"]
        rows = image.present.any(1).nonzero()[:, 0].cpu()
        if len(rows) < image.batch_size:
            image = image.take(rows)
        z = self._pooled_once({"image": image}, None, "moments") if len(rows) else None
        if shared is not None:
            shared["image"] = (rows, z)
        return rows, z

    def _shape_error(
        self, image: ModalityTokens, shared: dict | None = None
    ) -> torch.Tensor | None:
        """Mean squared error of the cutouts' shape statistics (:func:`shape_statistics`,
        each standardised over the batch) read back linearly from their image-only
        embeddings: about 1 − R² of the read-out. None with fewer than two images."""
        rows, z = self._image_only(image, shared)
        if len(rows) < 2 or image.position is None:
            return None
        with torch.no_grad():
            target = shape_statistics(image.take(rows), self.cfg.n_bands)
            target = (target - target.mean(0)) / target.std(0).clamp_min(1e-6)
        return ((self.shape_head(z).float() - target) ** 2).mean()

    def _alignment_error(
        self, batch: dict[str, ModalityTokens], shared: dict | None = None
    ) -> torch.Tensor | None:
        """Symmetric InfoNCE between the image-only and the spectrum-only embeddings of the
        galaxies that have both (CLIP, Radford et al. 2021; AstroCLIP, Parker et al. 2024):
        each image must pick its own galaxy's spectrum out of the batch's, and each spectrum
        its image. The image side is the embedding the probes read (moments pooling at the
        embedding layer), so what the spectrum tells apart — the SED's type, the redshift —
        is pulled into it. None with fewer than two such galaxies."""
        if "image" not in batch or "spectrum" not in batch:
            return None
        both = batch["image"].present.any(1) & batch["spectrum"].present.any(1)
        rows = both.nonzero()[:, 0].cpu()
        if len(rows) < 2:
            return None
        image_rows, z = self._image_only(batch["image"], shared)
        zi = self.align_heads["image"](z[torch.searchsorted(image_rows, rows)])
        zs = self._aligned_spectra(batch["spectrum"].take(rows))
        logits = F.normalize(zi.float(), dim=1) @ zs.T / ALIGN_TEMPERATURE
        target = torch.arange(len(rows), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def aligned(
        self, image: ModalityTokens, spectrum: ModalityTokens
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit vectors of the images and of the spectra in the shared space of
        ``model.align`` (cosine similarity = their dot product)."""
        zi = self.align_heads["image"](self._pooled_once({"image": image}, None, "moments"))
        return F.normalize(zi.float(), dim=1), self._aligned_spectra(spectrum)

    def _aligned_spectra(self, spectrum: ModalityTokens) -> torch.Tensor:
        """Unit vectors of the spectra in ``model.align``'s shared space."""
        zs = self.align_heads["spectrum"](
            self._pooled_once({"spectrum": spectrum}, None, "meanstd")
        )
        return F.normalize(zs.float(), dim=1)

    def loss(
        self, batch: dict[str, ModalityTokens], plan: Plan, delta: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch's modalities of each modality's mean error; and those means."""
        errors = self(batch, plan, delta)
        per = {m: e / c.clamp_min(1.0) for m, (e, c) in errors.items() if float(c) > 0}
        total = torch.stack(list(per.values())).mean() if per else torch.zeros(())
        return total, {m: float(v.detach()) for m, v in per.items()}

    # ------------------------------------------------------------------ downstream
    def embedding_objective(self) -> str:
        """Bidirectional attention when the model was trained for it, else causal."""
        return "autoregressive" if self.cfg.objective == "autoregressive" else "masked"

    @torch.no_grad()
    def embed(
        self,
        batch: dict[str, ModalityTokens],
        layer: int | None = None,
        pool: str = "mean",
        orientations: int = 1,
    ) -> torch.Tensor:
        """One vector per object: the state after block ``layer``, pooled over its tokens;
        with ``orientations`` 4 or 8, the mean of that vector over the image turned by
        quarter turns (and mirrored)."""
        return self.pooled_state(batch, layer, pool, orientations)

    def pooled_state(
        self,
        batch: dict[str, ModalityTokens],
        layer: int | None = None,
        pool: str = "mean",
        orientations: int = 1,
    ) -> torch.Tensor:
        """:meth:`embed` with gradients (for fine-tuning and attribution maps)."""
        return self.pooled_states(batch, [layer], pool, orientations)[0]

    def pooled_states(
        self,
        batch: dict[str, ModalityTokens],
        layers: list[int | None],
        pool: str = "mean",
        orientations: int = 1,
    ) -> list[torch.Tensor]:
        """:meth:`pooled_state` after each block of ``layers``, from one pass through the
        blocks per orientation (with gradients)."""
        check_orientations(orientations)
        if orientations == 1 or "image" not in batch:
            return self._pooled_layers(batch, layers, pool)
        total: list[torch.Tensor] = []
        for turns, mirror in ORIENTATIONS[:orientations]:
            image = orient_tokens(
                batch["image"], turns, mirror, self.cfg.patch_size, self.cfg.n_bands
            )
            pooled = self._pooled_layers({**batch, "image": image}, layers, pool)
            total = pooled if not total else [t + p for t, p in zip(total, pooled, strict=True)]
        return [t / orientations for t in total]

    def _pooled_once(
        self, batch: dict[str, ModalityTokens], layer: int | None, pool: str
    ) -> torch.Tensor:
        return self._pooled_layers(batch, [layer], pool)[0]

    def _pooled_layers(
        self, batch: dict[str, ModalityTokens], layers: list[int | None], pool: str
    ) -> list[torch.Tensor]:
        layers = [self.default_layer() if layer is None else layer for layer in layers]
        for layer in layers:
            if not 0 <= layer <= self.cfg.n_layer:
                raise ValueError(f"layer must lie in 0…{self.cfg.n_layer}, got {layer}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        plan = self.canonical_plan(batch, self.embedding_objective())
        states, seq = self.hidden_states(batch, plan, upto=max(layers))
        return [self._pool(states[layer], seq, batch, pool) for layer in layers]

    def _pool(
        self, h: torch.Tensor, seq: Sequence, batch: dict[str, ModalityTokens], pool: str
    ) -> torch.Tensor:
        if pool == "last":
            last = (seq.present.sum(1) - 1).clamp_min(0)
            return h[torch.arange(len(h)), last]
        pooled = self._mean_spread(h, seq, pool)
        if pool not in ("moments", "radial") or "image" not in self.modalities:
            return pooled
        parts = [pooled, self._image_moments(h, seq, batch.get("image"))]
        if pool == "radial":
            parts.append(self._image_radial(h, seq, batch.get("image")))
        return torch.cat(parts, dim=1)

    def _mean_spread(self, h: torch.Tensor, seq: Sequence, pool: str) -> torch.Tensor:
        # A light curve's states are pooled by their mean alone, its spread half left at
        # zero: the spread over epochs hid the period and class from few-label probes
        # (reference run, log-period R² at 30 labels 0.559 with it, 0.788 without;
        # docs/benchmarks.md, "Pooling").
        spreads = [m not in MEAN_ONLY for m in self.modalities]
        if seq.identity:
            mean = h.mean(dim=1)
            if pool == "mean":
                return mean
            # A tensor lookup rather than a Python branch, so that the pooling exports to ONNX.
            keep = h.new_tensor(spreads)[seq.modality[:, :1]]
            return torch.cat([mean, keep * h.std(dim=1, correction=0)], dim=1)
        # Each modality's tokens averaged, then the modalities averaged: 64 image patches
        # must not drown three photometry tokens (measured: redshift R² from all of a
        # galaxy's modalities rose from 0.32 to 0.45 with this pooling, tiny preset). The
        # spread is taken the same way, per modality (light curves excepted), then averaged.
        total = h.new_zeros(h.shape[0], h.shape[2])
        spread = h.new_zeros(h.shape[0], h.shape[2])
        count = h.new_zeros(h.shape[0], 1)
        spread_count = h.new_zeros(h.shape[0], 1)
        for j in range(len(self.modalities)):
            w = (seq.present & (seq.modality == j))[..., None].to(h.dtype)
            n = w.sum(1)
            has = (n > 0).to(h.dtype)
            mean = (h * w).sum(1) / n.clamp_min(1.0)
            total = total + has * mean
            if pool != "mean" and spreads[j]:
                var = (((h - mean[:, None]) ** 2) * w).sum(1) / n.clamp_min(1.0)
                spread = spread + has * _safe_sqrt(var)
                spread_count = spread_count + has
            count = count + has
        mean = total / count.clamp_min(1.0)
        if pool == "mean":
            return mean
        return torch.cat([mean, spread / spread_count.clamp_min(1.0)], dim=1)

    def _image_moments(
        self, h: torch.Tensor, seq: Sequence, image: ModalityTokens | None
    ) -> torch.Tensor:
        """``(B, len(MOMENTS) × width)``: per (disc about the cutout's centre, order m) and per
        channel, |Σ (h − disc mean) e^{imθ}| / tokens in the disc; zeros without an image."""
        b, _, d = h.shape
        if image is None or image.position is None:
            return h.new_zeros(b, len(MOMENTS) * d)
        is_image, x, y, radius = self._image_slots(h, seq, image)
        # cos mθ and sin mθ without the angle: (x + iy)^m / r^m; zero at the centre, where θ
        # is undefined.
        unit_x = torch.where(radius > 0, x / radius.clamp_min(1e-12), 0.0)
        unit_y = torch.where(radius > 0, y / radius.clamp_min(1e-12), 0.0)
        waves = {1: (unit_x, unit_y), 2: (unit_x**2 - unit_y**2, 2 * unit_x * unit_y)}
        out = []
        for disc, m in MOMENTS:
            cos_m, sin_m = (wave[..., None] for wave in waves[m])
            w = (is_image & (radius <= disc + 1e-4))[..., None].to(h.dtype)
            n = w.sum(1).clamp_min(1.0)
            a = (h - (h * w).sum(1, keepdim=True) / n[:, None]) * w
            power = (a * cos_m).sum(1) ** 2 + (a * sin_m).sum(1) ** 2
            out.append(_safe_sqrt(power) / n)
        return torch.cat(out, dim=1)

    def _image_radial(
        self, h: torch.Tensor, seq: Sequence, image: ModalityTokens | None
    ) -> torch.Tensor:
        """``(B, len(RADIAL) × width)``: per disc about the cutout's centre and per channel,
        the mean state of the image tokens in the disc less that of all image tokens;
        zeros without an image."""
        b, _, d = h.shape
        if image is None or image.position is None:
            return h.new_zeros(b, len(RADIAL) * d)
        is_image, _, _, radius = self._image_slots(h, seq, image)
        every = is_image[..., None].to(h.dtype)
        overall = (h * every).sum(1) / every.sum(1).clamp_min(1.0)
        out = []
        for disc in RADIAL:
            w = (is_image & (radius <= disc + 1e-4))[..., None].to(h.dtype)
            out.append((h * w).sum(1) / w.sum(1).clamp_min(1.0) - overall)
        return torch.cat(out, dim=1)

    def _image_slots(
        self, h: torch.Tensor, seq: Sequence, image: ModalityTokens
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Which sequence slots hold image tokens, and each slot's x, y and radius about
        the cutout's centre in patch pitches."""
        b = h.shape[0]
        j = self.modalities.index("image")
        is_image = seq.present & (seq.modality == j)
        slot_pos = image.position.to(h.dtype)
        if not seq.identity:  # a slot's position is that of the image token it holds
            source = torch.where(is_image, seq.source, 0)[..., None].expand(-1, -1, 2)
            slot_pos = slot_pos.expand(b, -1, -1).gather(1, source)
        xy = slot_pos / patch_pitch(image.position[0, :, 0].to(h.dtype))
        x, y = xy[..., 0], xy[..., 1]
        return is_image, x, y, (x**2 + y**2).sqrt()

    @torch.no_grad()
    def predict(
        self,
        batch: dict[str, ModalityTokens],
        target: str,
        query: ModalityTokens,
        method: str = "auto",
    ) -> torch.Tensor:
        """Generate the ``target`` modality's token values from the others in ``batch``.

        ``query`` gives the target tokens' positions/fields and which exist (its values are
        ignored). ``method`` "masked" fills them in one bidirectional pass; "autoregressive"
        writes them one token at a time after the context, each conditioned on the ones
        before. "auto" uses the masked pass when the model was trained for it.
        """
        if target not in self.specs:
            raise ModalityError(
                f"this model was trained on {self.modalities}; it cannot predict {target!r}"
            )
        if method == "auto":
            method = self.embedding_objective()
        if method not in ("masked", "autoregressive"):
            raise ValueError(f"method must be auto, masked or autoregressive; got {method!r}")
        context = {m: t for m, t in batch.items() if m != target}
        b = self.check({**context, target: query}) if context else self.check({target: query})
        values = torch.zeros_like(query.values)
        full = ModalityTokens(
            values, torch.ones_like(query.valid), query.present, query.position, query.field
        )
        j_target = self.modalities.index(target)
        if method == "masked":
            plan = Plan(
                "masked",
                mask={
                    **{m: torch.zeros_like(t.present) for m, t in context.items()},
                    target: query.present.clone(),
                },
            )
            seq, h = self.predictions({**context, target: full}, plan)
            sel = seq.hidden & (seq.modality == j_target)
            rows, slots = sel.nonzero(as_tuple=True)
            values[rows.cpu(), seq.source[rows, slots].cpu()] = self.decoders[target](
                h[rows, slots]
            ).to(values)
            return values
        rank = torch.arange(len(self.modalities))
        rank = (
            torch.where(rank == j_target, len(self.modalities), rank)
            .argsort()
            .argsort()
            .expand(b, -1)
        )
        plan = Plan("autoregressive", rank=rank)
        for k in range(query.n_tokens):
            seq, h = self.predictions({**context, target: full}, plan)
            sel = (seq.modality == j_target) & (seq.source == k) & seq.present
            rows, slots = sel.nonzero(as_tuple=True)
            if len(rows):
                values[rows.cpu(), k] = self.decoders[target](h[rows, slots]).to(values)
        return values


def build_model(cfg: ModelConfig) -> MultimodalModel:
    """The model a config describes (kept as the one place that builds it)."""
    return MultimodalModel(cfg)
