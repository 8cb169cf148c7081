"""Emissions avoided by local trading, from the grid's average carbon intensity per interval.

Method (stated in every report): **average intensity, attributional**. A kWh a participant buys
from a neighbour's PV (directly or stored in a battery) replaces a kWh it would otherwise have
imported, and is credited with that interval's *average* grid intensity
(``scenario.carbon_g_per_kwh``; the scenario models no marginal-intensity series, so a marginal
method is not offered). The community figure is consequential over the feeder: the change in
emissions of the energy the community imports through its transformer, market versus no market
(network losses neglected). The two need not agree: PV sold to a neighbour would otherwise have
been exported, not wasted.
"""

from __future__ import annotations

import numpy as np

METHOD = (
    "average grid carbon intensity per interval; participants: attributional (kWh bought "
    "locally x intensity), community: change in imports through the transformer x intensity"
)


def participant_avoided_kg(bought_kwh: np.ndarray, carbon_g_per_kwh: np.ndarray) -> np.ndarray:
    """(T, P) purchases and (T,) intensity -> (P,) kg CO2 avoided."""
    return (bought_kwh * carbon_g_per_kwh[:, None]).sum(0) / 1000.0


def community_import_kg(metered_kwh: np.ndarray, carbon_g_per_kwh: np.ndarray) -> float:
    """Emissions of the community's net imports (kg), netting members within each interval."""
    imports = np.maximum(metered_kwh.sum(1), 0)
    return float(imports @ carbon_g_per_kwh / 1000.0)
