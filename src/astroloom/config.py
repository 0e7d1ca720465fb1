"""Run configuration: dataclasses, TOML files, ``--set`` overrides and validation.

A config file has the tables ``[model]``, ``[data]``, ``[train]`` and (optional)
``[augment]``, plus a top-level ``out`` (the run directory). ``[model]`` and ``[augment]``
may name a ``preset`` (``tiny``, ``small``; ``transfer``) whose values the other keys then
override. Every key is checked: an unknown one is refused with
the allowed names, and a value of the wrong type names the key and the type it needs.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration key or value the user must fix."""


# The layout of a saved config (config.json beside every checkpoint). 1: astroloom 0.1
# (no version key; images normalised per survey, light curves by time only); 2: per-object
# image normalisation and period-aware light-curve tokens.
FORMAT_VERSION = 2


def astroloom_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("astroloom")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


MODALITIES = ("image", "spectrum", "photometry", "lightcurve")
OBJECTIVES = ("autoregressive", "masked", "mixed")


@dataclass
class ModelConfig:
    """Shape of the transformer and of the image tokens it reads."""

    n_layer: int = 5
    n_head: int = 4
    n_embd: int = 128
    image_size: int = 64
    n_bands: int = 3
    patch_size: int = 8
    dropout: float = 0.0
    # Which observations the model reads: any subset of MODALITIES, in one model class
    # (model/multimodal.py); ["image"] alone is an image-only next-patch model.
    modalities: list[str] = field(default_factory=lambda: ["image"])
    objective: str = "autoregressive"  # autoregressive | masked | mixed
    mask_ratio: float = 0.3  # masked objective: share of tokens hidden
    spectrum_patch: int = 32  # flux pixels per spectrum token
    lightcurve_tokens: int = 64  # observations kept per light curve
    lightcurve_bands: int = 2
    max_tokens: int = 256  # context length in tokens, all modalities together
    # Image values: "object" (per-object, unit-free; brightness given as context) or
    # "survey" (one arcsinh scale per band of the training survey, astroloom 0.1).
    image_norm: str = "object"
    # With image_norm "object": the object's colours (neighbouring bands' light ratios over
    # the central half, in magnitudes) as context values beside its brightness.
    image_colours: bool = False
    # Spectrum values: "survey" (one arcsinh softening in the training survey's flux unit,
    # astroloom ≤ 0.2) or "object" (per-object softening, unit-free; brightness as context).
    spectrum_norm: str = "survey"
    # Light curves: period-aware tokens (phase at the Lomb–Scargle period as a coordinate;
    # period, peak power and median magnitude as context). False in astroloom 0.1 runs.
    lightcurve_phase: bool = True
    # Modalities whose embedding must keep the object's context values (a light curve's
    # period, peak power and median magnitude; an image's or spectrum's brightness): while
    # training, a linear head reads them back from the modality's mean token state at the
    # embedding layer, its Huber error added to that modality's loss. Empty (off) by default.
    keep_context: list[str] = field(default_factory=list)
    # At most this many objects per step (per kept modality) have their context read back:
    # the read-out costs a second pass through half the blocks, which for an image read
    # back from every galaxy adds ~25 % to a step; 8 of 32 cost 5–12 % and keep most of
    # the gain (docs/benchmarks.md, "Colours as context"). 0: every object.
    keep_context_rows: int = 0
    # Weight of a view-invariance term (0: off): while training, each galaxy's image is
    # also seen turned and with fresh noise, and the image-only embedding (mean and spread
    # of the token states at the embedding layer) of the two views is pulled together,
    # measured per dimension against the batch's spread so that collapse does not pay.
    # An ablation of issue [transfer] (docs/benchmarks.md, "View invariance").
    invariance: float = 0.0
    # Weight of a cross-modal alignment term (0: off; AstroCLIP's idea, Parker et al.
    # 2024): while training, the image-only and spectrum-only embeddings of each galaxy
    # that has both are projected and matched against the batch's other galaxies
    # (symmetric InfoNCE), so that the image embedding carries what the spectrum says.
    # An ablation of issue [transfer] (docs/benchmarks.md, "Masking ratio, objective and
    # image–spectrum alignment").
    align: float = 0.0
    # Weight of a redshift-shift term (0: off): while training, each spectrum is seen as
    # two views, each stretched in wavelength as if the galaxy lay at a slightly other
    # redshift (up to ±10**0.02), both cut to the same wavelength range, and a linear
    # read-out of the difference of their spectrum-only embeddings must give the stretch
    # between them. The embedding then has to place the spectrum's features — lines and
    # breaks — in wavelength. An ablation of issue [interpret]: redshift R² +0.015–0.027,
    # but the redshift map no nearer the lines and few-shot probes less steady
    # (docs/benchmarks.md, "A surrogate task that needs the lines' positions").
    spectrum_shift: float = 0.0
    # Weight of a shape read-out (0: off): while training, a few rotation-invariant
    # statistics of each cutout's own pixels — its ellipticity within two apertures, its
    # light concentration and its mean radius — are read back linearly from the image-only
    # embedding, so that shape lies along a few directions a few-label probe finds. No
    # label is used. An ablation of issue [transfer] (docs/benchmarks.md, "Shape read-out").
    keep_shape: float = 0.0

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.n_bands

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "image_size", "n_bands", "patch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})"
            )
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"model.image_size ({self.image_size}) must be a multiple of "
                f"model.patch_size ({self.patch_size})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must lie in [0, 1), got {self.dropout}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(
                f"model.modalities must be distinct names from {list(MODALITIES)}; "
                f"got {self.modalities}"
            )
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"model.objective must be one of {list(OBJECTIVES)}, got {self.objective!r}"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"model.mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if self.image_norm not in ("object", "survey"):
            raise ConfigError(
                f"model.image_norm must be 'object' or 'survey', got {self.image_norm!r}"
            )
        if self.image_colours and self.image_norm != "object":
            raise ConfigError(
                "model.image_colours needs model.image_norm = 'object' (the survey "
                "normalisation gives the model no context values)"
            )
        if self.spectrum_norm not in ("object", "survey"):
            raise ConfigError(
                f"model.spectrum_norm must be 'object' or 'survey', got {self.spectrum_norm!r}"
            )
        with_context = {
            "image": self.image_norm == "object",
            "spectrum": self.spectrum_norm == "object",
            "lightcurve": self.lightcurve_phase,
        }
        for m in self.keep_context:
            if m not in self.modalities or not with_context.get(m, False):
                readable = [k for k, v in with_context.items() if v and k in self.modalities]
                raise ConfigError(
                    f"model.keep_context: {m!r} gives this model no context values to keep; "
                    f"choose from {readable}"
                )
        if self.keep_context_rows < 0:
            raise ConfigError(
                "model.keep_context_rows must be ≥ 0 (0: every object), "
                f"got {self.keep_context_rows}"
            )
        if self.invariance < 0 or not math.isfinite(self.invariance):
            raise ConfigError(f"model.invariance must be ≥ 0, got {self.invariance}")
        if self.invariance and "image" not in self.modalities:
            raise ConfigError("model.invariance needs the image modality (it turns images)")
        if self.align < 0 or not math.isfinite(self.align):
            raise ConfigError(f"model.align must be ≥ 0, got {self.align}")
        if self.align and not {"image", "spectrum"} <= set(self.modalities):
            raise ConfigError("model.align needs the image and spectrum modalities")
        if self.spectrum_shift < 0 or not math.isfinite(self.spectrum_shift):
            raise ConfigError(f"model.spectrum_shift must be ≥ 0, got {self.spectrum_shift}")
        if self.spectrum_shift and "spectrum" not in self.modalities:
            raise ConfigError("model.spectrum_shift needs the spectrum modality")
        if self.keep_shape < 0 or not math.isfinite(self.keep_shape):
            raise ConfigError(f"model.keep_shape must be ≥ 0, got {self.keep_shape}")
        if self.keep_shape and "image" not in self.modalities:
            raise ConfigError("model.keep_shape needs the image modality")
        for name in ("spectrum_patch", "lightcurve_tokens", "lightcurve_bands", "max_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")


# Named model shapes, smallest first. Parameter counts (tests/test_model.py checks tiny and
# small): nano ≈ 40 k, micro ≈ 0.18 M, tiny ≈ 1.05 M, small ≈ 4.85 M, base ≈ 85 M.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "nano": {"n_layer": 2, "n_head": 2, "n_embd": 32},
    "micro": {"n_layer": 3, "n_head": 4, "n_embd": 64},
    "tiny": {"n_layer": 5, "n_head": 4, "n_embd": 128},
    "small": {"n_layer": 6, "n_head": 8, "n_embd": 256},
    "base": {"n_layer": 12, "n_head": 12, "n_embd": 768},
}


@dataclass
class DataConfig:
    """Where the Parquet shards are, how much of them is held out, and whether training
    holds them in memory or streams them.

    ``stream = true`` reads the shards a row group at a time (``workers`` loader processes
    per rank, batches drawn from a pool of ``shuffle_buffer`` rows): memory stays flat
    whatever the dataset's size, every training object comes once per epoch, and the
    validation objects are chosen by a hash of their id. In memory (the default) a step
    draws its batch at random from the whole training set.
    """

    path: str = "data/mock"
    val_fraction: float = 0.1
    stream: bool = False
    workers: int = 2
    shuffle_buffer: int = 2000

    def validate(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise ConfigError(f"data.workers must be 0 or more, got {self.workers}")
        if self.shuffle_buffer < 0:
            raise ConfigError(f"data.shuffle_buffer must be 0 or more, got {self.shuffle_buffer}")


@dataclass
class TrainConfig:
    """Optimiser, schedule and bookkeeping of one training run.

    ``batch_size`` is the global batch of one optimiser step: under torchrun it is split
    across ranks, and on each rank into ``grad_accum_steps`` micro-batches.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    huber_delta: float = 1.0
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    grad_accum_steps: int = 1
    activation_checkpointing: bool = False  # trade compute for memory in deep models
    # torch.compile the model: +10 % tokens/s for the image-only tiny model on CPU after ~30 s
    # of compiling; the multimodal demo recipe compiles for ~2 minutes (CPU and H200 alike)
    # and then runs no faster, since the sequence length changes from batch to batch
    # (docs/benchmarks.md, "On a GPU").
    compile: bool = False
    parallel: str = "ddp"  # under torchrun: ddp (replicate) or fsdp (shard the weights)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    # Continued pretraining: start from this run's (or checkpoint's) weights and tokenizer,
    # with a fresh optimizer and schedule, on this config's data ("" for a fresh model).
    init: str = ""
    grid_intensity: float = 0.429  # kg CO2e per kWh for the impact statement
    device_power_w: float = 0.0  # 0: measure with codecarbon, else assume per device type

    def validate(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "eval_every",
            "checkpoint_every",
            "eval_batches",
            "grad_accum_steps",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.keep_checkpoints < 1:
            raise ConfigError("train.warmup_steps must be >= 0 and train.keep_checkpoints >= 1")
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError(
                f"train.min_lr ({self.min_lr}) must be positive and at most train.lr ({self.lr})"
            )
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(
                f"train.batch_size ({self.batch_size}) must be divisible by "
                f"train.grad_accum_steps ({self.grad_accum_steps})"
            )
        if self.grid_intensity < 0 or self.device_power_w < 0:
            raise ConfigError("train.grid_intensity and train.device_power_w must be >= 0")
        if self.parallel not in ("ddp", "fsdp"):
            raise ConfigError(f"train.parallel must be ddp or fsdp, got {self.parallel!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(
                f"train.device must be one of auto, cpu, cuda, cuda:N; got {self.device!r}"
            )


@dataclass
class AugmentConfig:
    """Image augmentations applied to each training batch (astroloom.data.augment): what
    another instrument or a photograph would change about the same galaxy. Each has a
    strength (0 switches it off) and, where it says, a probability per object."""

    rot_flip: float = 0.0  # probability of one of the 8 symmetries of the square
    shift: float = 0.0  # largest sub-pixel shift, pixels
    zoom: float = 1.0  # largest zoom, log-uniform in [1/zoom, zoom] (crop / rescale)
    p_geometry: float = 1.0  # probability of the shift and zoom
    psf_sigma: float = 0.0  # largest extra Gaussian PSF σ, pixels
    p_psf: float = 0.5
    noise: float = 0.0  # largest extra sky noise, in units of the data's sky noise
    p_noise: float = 0.5
    flux_mag: float = 0.0  # largest flux change, magnitudes
    p_flux: float = 0.5
    photo: float = 0.0  # probability of rendering as an 8-bit (JPEG) colour photograph
    drop_unit: float = 0.0  # probability of hiding the flux unit (brightness unknown)

    @property
    def enabled(self) -> bool:
        return any(
            v > 0
            for v in (
                self.rot_flip, self.shift, self.zoom - 1.0, self.psf_sigma, self.noise,
                self.flux_mag, self.photo, self.drop_unit,
            )
        )

    def validate(self) -> None:
        for name in ("rot_flip", "p_geometry", "p_psf", "p_noise", "p_flux", "photo", "drop_unit"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"augment.{name} is a probability in [0, 1], got {getattr(self, name)}"
                )
        for name in ("shift", "psf_sigma", "noise", "flux_mag"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if self.zoom < 1.0:
            raise ConfigError(f"augment.zoom is a factor >= 1, got {self.zoom}")


# Named bundles for [augment] preset = "…", each measured on the domain-shift benchmark
# (docs/benchmarks.md, "Transfer"): "photo" keeps to the symmetries of the square and
# photograph renditions; "transfer" adds every change of instrument.
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "photo": {"rot_flip": 1.0, "photo": 0.15, "drop_unit": 0.15},
    "transfer": {
        "rot_flip": 1.0,
        "shift": 0.5,
        "zoom": 1.5,
        "p_geometry": 0.5,
        "psf_sigma": 1.5,
        "p_psf": 0.3,
        "noise": 2.0,
        "p_noise": 0.3,
        "flux_mag": 1.0,
        "p_flux": 0.3,
        "photo": 0.2,
        "drop_unit": 0.2,
    },
}


@dataclass
class RunConfig:
    """Everything one ``astroloom train`` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    out: str = "runs/run"

    def validate(self) -> RunConfig:
        self.model.validate()
        self.data.validate()
        self.train.validate()
        self.augment.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON; the data path, and the run that ``train.init`` continues
        when it is a folder on disk (not a model name), are made absolute, so that the saved
        config retrains the run from any working directory (`astroloom train config.json`)."""
        raw = {
            "format_version": FORMAT_VERSION,
            "written_by": astroloom_version(),
            **self.to_dict(),
        }
        raw["data"]["path"] = str(Path(raw["data"]["path"]).resolve())
        init = raw["train"]["init"]
        if init and Path(init).exists():
            raw["train"]["init"] = str(Path(init).resolve())
        Path(path).write_text(json.dumps(raw, indent=2) + "\n")


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "augment": AugmentConfig,
}
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "model": MODEL_PRESETS,
    "augment": AUGMENT_PRESETS,
}


def _unknown(kind: str, name: str, allowed: list[str], where: str) -> ConfigError:
    hint = difflib.get_close_matches(name, allowed, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return ConfigError(
        f"unknown {kind} {name!r}{where}.{suggestion} Allowed: {', '.join(sorted(allowed))}"
    )


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default, allowing int → float."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool or isinstance(value, bool):
        if type(value) is not expected:
            raise ConfigError(
                f"{section}.{key} must be {expected.__name__}, got {value!r} "
                f"({type(value).__name__})"
            )
        return value
    if not isinstance(value, expected):
        raise ConfigError(
            f"{section}.{key} must be {expected.__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def _build_section(section: str, values: dict[str, Any], where: str) -> Any:
    cls = _SECTIONS[section]
    values = dict(values)
    presets = _PRESETS.get(section)
    if presets is not None and "preset" in values:
        preset = values.pop("preset")
        if preset not in presets:
            raise ConfigError(
                f"unknown {section} preset {preset!r}{where}. Allowed: {', '.join(presets)}"
            )
        values = {**presets[preset], **values}
    defaults = cls()
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            extra = ["preset"] if section in _PRESETS else []
            raise _unknown(f"key in [{section}]", key, names + extra, where)
        kwargs[key] = _coerce(section, key, value, getattr(defaults, key))
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any], where: str = "") -> RunConfig:
    """Build and validate a :class:`RunConfig` from nested plain values."""
    allowed = [*list(_SECTIONS), "out"]
    parts: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise _unknown("section", key, allowed, where)
        if key == "out":
            if not isinstance(value, str):
                raise ConfigError(f"out must be a path string, got {value!r}")
            parts["out"] = value
        else:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table of keys, got {value!r}")
            parts[key] = _build_section(key, value, where)
    return RunConfig(**parts).validate()


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` where value is a TOML literal or a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    dotted, raw_value = text.split("=", 1)
    path = [p.strip() for p in dotted.strip().split(".") if p.strip()]
    if not path:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw_value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value.strip()
    return path, value


def check_override(keys: list[str], text: str) -> None:
    """A ``--set`` path names a known section and key; otherwise the error says it came
    from ``--set`` (not from the config file)."""
    where = f" (from --set {text!r})"
    allowed = [*list(_SECTIONS), "out"]
    if keys[0] not in allowed:
        raise _unknown("section", keys[0], allowed, where)
    if keys[0] == "out":
        if len(keys) != 1:
            raise ConfigError(f"out is a path, not a table{where}")
        return
    if len(keys) != 2:
        raise ConfigError(f"--set expects section.key=value{where}")
    names = [f.name for f in fields(_SECTIONS[keys[0]])]
    extra = ["preset"] if keys[0] in _PRESETS else []
    if keys[1] not in names + extra:
        raise _unknown(f"key in [{keys[0]}]", keys[1], names + extra, where)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML config, or the ``config.json`` a run wrote (or start from defaults), and
    apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    where = ""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        if path.suffix == ".json":
            try:
                raw = upgrade_saved(json.loads(path.read_text()), f" in {path}")
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path} is not valid JSON: {err}") from err
        else:
            try:
                raw = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"{path} is not valid TOML: {err}") from err
        where = f" in {path}"
    for text in overrides or []:
        keys, value = parse_override(text)
        check_override(keys, text)
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {key!r} is not a table")
        node[keys[-1]] = value
    return config_from_dict(raw, where)


def upgrade_saved(raw: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A saved config of any format version, as the current version reads it: keys added
    since keep the meaning the older astroloom gave them."""
    raw = dict(raw)
    version = raw.pop("format_version", 1)
    writer = raw.pop("written_by", None)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        by = f" (written by astroloom {writer})" if writer else ""
        raise ConfigError(
            f"config{where} has format version {version!r}{by}; this astroloom "
            f"{astroloom_version()} reads up to {FORMAT_VERSION}: upgrade astroloom "
            "(pip install -U astroloom) to load it"
        )
    if version < 2 and isinstance(raw.get("model"), dict):
        raw["model"] = {"image_norm": "survey", "lightcurve_phase": False, **raw["model"]}
    return raw


def config_from_json(path: str | Path) -> RunConfig:
    """Load the config a run wrote beside its weights (any format version)."""
    where = f" in {path}"
    return config_from_dict(upgrade_saved(json.loads(Path(path).read_text()), where), where)


# The model settings that fix the shape of the weights or the meaning of the tokens: a run
# can only continue another's pretraining (train.init) when these agree.
WEIGHT_FIELDS = (
    "n_layer",
    "n_head",
    "n_embd",
    "n_bands",
    "patch_size",
    "modalities",
    "spectrum_patch",
    "lightcurve_bands",
    "image_norm",
    "image_colours",
    "spectrum_norm",
    "lightcurve_phase",
)


def model_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """``name: a → b`` for every weight-shaping model setting on which ``a`` and ``b`` differ."""
    return [
        f"model.{name}: {getattr(a, name)!r} → {getattr(b, name)!r}"
        for name in WEIGHT_FIELDS
        if getattr(a, name) != getattr(b, name)
    ]


def model_config_from_dict(raw: dict[str, Any], where: str = "") -> ModelConfig:
    cfg = _build_section("model", raw, where)
    cfg.validate()
    return cfg
