"""How customers respond to a DR call: the expectation the planner uses, and the stochastic
draw the twin uses.

Both share one response law so predictions can be tested honestly: the planner uses its
*beliefs* (declared priors refined by measured events), the twin uses each customer's hidden
*true* parameters, drawn once per run around the declared priors.

Response law (fraction of the customer's eligible flexible load shed during the event):

* price programs (CPP, RTP): ``elasticity * ln(event_price / normal_price)``;
* peak-time rebates: ``elasticity * ln((normal_price + rebate) / normal_price)``;
* direct load control and emergency requests: 1 (the utility switches the devices);

clipped to [0, 1], times ``(1 - opt_out)`` and ``fatigue ** events_in_last_window``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dr.config import CONTROL_KINDS, PRICE_KINDS, CustomerPriors, Spread


def shed_fraction(
    kind: str,
    level_eur_per_kwh: np.ndarray | float,
    normal_price_eur_per_kwh: float,
    elasticity: np.ndarray,
    opt_out: np.ndarray,
    fatigue: np.ndarray,
    recent_events: np.ndarray,
) -> np.ndarray:
    """Expected share of eligible flexible load each customer sheds (vectorised)."""
    normal = max(normal_price_eur_per_kwh, 1e-6)
    level = np.asarray(level_eur_per_kwh, dtype=float)
    if kind in CONTROL_KINDS:
        willing = np.ones_like(np.asarray(elasticity, dtype=float))
    elif kind in PRICE_KINDS:
        willing = elasticity * np.log(np.maximum(level, normal) / normal)
    elif kind == "peak_time_rebate":
        willing = elasticity * np.log((normal + level) / normal)
    else:
        msg = f"program kind {kind!r} is not dispatchable"
        raise ValueError(msg)
    frac = np.clip(willing, 0.0, 1.0) * (1.0 - opt_out) * fatigue ** np.asarray(recent_events)
    return np.clip(frac, 0.0, 1.0)


def _draw(rng: np.random.Generator, s: Spread, n: int, lo: float, hi: float) -> np.ndarray:
    return np.clip(rng.normal(s.mean, s.std, n), lo, hi)


@dataclass
class CustomerTraits:
    """Response parameters per customer (beliefs or hidden truth)."""

    elasticity: np.ndarray
    opt_out: np.ndarray
    fatigue: np.ndarray
    setback_c: np.ndarray

    @classmethod
    def prior(cls, priors: CustomerPriors, n: int) -> CustomerTraits:
        """The declared population means: what the agent believes before any event."""
        ones = np.ones(n)
        return cls(
            elasticity=ones * priors.elasticity.mean,
            opt_out=ones * priors.opt_out_probability.mean,
            fatigue=ones * priors.fatigue_per_event.mean,
            setback_c=ones * priors.comfort_setback_c.mean,
        )

    @classmethod
    def draw(cls, priors: CustomerPriors, n: int, seed: int) -> CustomerTraits:
        """Hidden per-customer truth for the twin, scattered around the declared priors."""
        rng = np.random.default_rng(seed)
        return cls(
            elasticity=_draw(rng, priors.elasticity, n, 0.0, 5.0),
            opt_out=_draw(rng, priors.opt_out_probability, n, 0.0, 1.0),
            fatigue=_draw(rng, priors.fatigue_per_event, n, 0.05, 1.0),
            setback_c=_draw(rng, priors.comfort_setback_c, n, 0.0, 6.0),
        )
