"""What the DR agent offers the dispatch optimizer: flexible-resource blocks.

A block is "up to ``reduction_kw`` less feeder import over ``[start_step, end_step)`` (steps of
``Scenario.index``) at ``cost_eur_per_kwh``, followed by ``rebound_kw`` more import over the
next ``rebound_h`` hours", callable with ``notice_h`` hours of notice. Blocks of one program
and incentive level aggregate many customers, so they are expectations (the agent calibrates
them against measured events). An MPC can treat each block as a continuous variable
``0 <= r <= reduction_kw`` with a linear cost and a proportional rebound, or ignore blocks and
use ``DRAgent.forecast_adjustment_kw`` for events already committed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FlexibleResource:
    program: str
    level_eur_per_kwh: float
    start_step: int
    end_step: int
    reduction_kw: float
    cost_eur_per_kwh: float
    rebound_kw: float
    rebound_h: float
    notice_h: float
    n_customers: int

    def as_dict(self) -> dict:
        return asdict(self)
