"""The Chinchilla-form scaling law L(N, D) = E + A / N^α + B / D^β (Hoffmann et al. 2022).

N counts non-embedding parameters, D training tokens, and training compute is taken as
C ≈ 6 N D FLOPs. Minimising L at fixed C gives the compute-optimal allocation

    N*(C) = G (C/6)^a,   D*(C) = (C/6)^b / G,   a = β/(α+β),  b = α/(α+β),
    G = (α A / (β B))^(1/(α+β)).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class ScalingLaw:
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def model_term(self, n: np.ndarray | float) -> np.ndarray | float:
        return self.A / np.power(n, self.alpha)

    def data_term(self, d: np.ndarray | float) -> np.ndarray | float:
        return self.B / np.power(d, self.beta)

    def loss(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray | float:
        return self.E + self.model_term(n) + self.data_term(d)

    def compute_optimal(self, flops: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(N*, D*) minimising the loss at training compute ``flops`` = 6 N D."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        a = self.beta / (self.alpha + self.beta)
        b = self.alpha / (self.alpha + self.beta)
        per = np.asarray(flops, dtype=float) / FLOPS_PER_PARAM_TOKEN
        return g * per**a, per**b / g

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        raw = json.loads(Path(path).read_text())
        return cls(**raw.get("law", raw))


# Hoffmann et al. (2022), approach 3, as quoted in the review's Fig. 26.
PUBLISHED = ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def loss_table(law: ScalingLaw, models: list[tuple[str, float, float]]) -> str:
    """The review's Fig. 26 as Markdown: each model's two terms, E and the predicted loss."""
    rows = [
        "| model | N | D | A/N^α | B/D^β | E | L(N, D) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, d in models:
        rows.append(
            f"| {name} | {n:.3g} | {d:.3g} | {law.model_term(n):.3f} | {law.data_term(d):.3f} "
            f"| {law.E:.3f} | {law.loss(n, d):.3f} |"
        )
    return "\n".join(rows) + "\n"
