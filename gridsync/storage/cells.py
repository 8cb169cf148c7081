"""Cell ageing models: degradation rates as functions of the stressors, for LFP and NMC.

Two published semi-empirical models of NREL's BLAST-Lite (Gasper, Smith et al.), rewritten as
vectorised rate functions over numpy arrays so a fleet ages in one pass:

- ``lfp``: large-format prismatic LFP-graphite, > 250 Ah (the stationary-storage cell;
  data: doi:10.1016/j.est.2023.109042). Capacity loss = calendar ``k_cal t^0.526`` (t in days,
  rate by temperature and the graphite potential, i.e. state of charge) + cycling
  ``k_cyc EFC^0.828`` (rate by depth of discharge, C-rate and temperature).
- ``nmc``: Kokam 75 Ah NMC111-graphite (the EV cell; doi:10.23919/ACC.2017.7963578). Loss of
  lithium inventory by calendar ``q1 t^0.357`` and cycling ``q3 EFC^0.778`` (rate by depth of
  discharge and temperature), competing with a sigmoid loss of active material (rate by depth,
  mean state of charge and temperature); resistance grows with each LLI term.

The LFP model publishes no resistance; its growth is taken proportional to capacity loss
(``resistance_per_fade``), an assumption named here rather than a fitted result.

Units: temperature in kelvin, time in days, throughput in equivalent full cycles (EFC, charge
through the cell divided by twice the nominal capacity), C-rate in 1/h, SoC and depth in 0-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def graphite_potential_v(soc: np.ndarray) -> np.ndarray:
    """Graphite anode open-circuit potential vs Li/Li+ (V) at a cell state of charge.

    Safari & Delacourt (J. Electrochem. Soc. 158 (2011) A562) as a function of the anode's
    lithiation, which runs linearly from 0.0085 (empty cell) to 0.78 (full cell), as BLAST-Lite
    assumes for every chemistry. Low potential (high SoC) drives SEI growth: calendar ageing.
    """
    x = 0.0085 + np.asarray(soc, dtype=float) * (0.78 - 0.0085)
    return (
        0.6379
        + 0.5416 * np.exp(-305.5309 * x)
        + 0.044 * np.tanh(-(x - 0.1958) / 0.1088)
        - 0.1978 * np.tanh((x - 1.0571) / 0.0854)
        - 0.6875 * np.tanh((x + 0.0117) / 0.0529)
        - 0.0175 * np.tanh((x - 0.5692) / 0.0875)
    )


@dataclass(frozen=True)
class Cell:
    """One chemistry's ageing law. Rates are per-point arrays; exponents are the power laws'.

    ``cal_exp``: calendar loss ~ t_days ** cal_exp; ``cyc_exp``: cycling loss ~ EFC ** cyc_exp.
    """

    name: str
    chemistry: str
    cal_exp: float
    cyc_exp: float
    has_lam: bool
    resistance_per_fade: float  # used only when the model has no resistance law

    def calendar_rate(self, temp_k: np.ndarray, soc: np.ndarray) -> np.ndarray:
        """Calendar-loss coefficient (fraction of capacity per day ** cal_exp)."""
        ua = graphite_potential_v(soc)
        if self.chemistry == "LFP":
            return 8.37e4 * np.exp(-5.21e3 / temp_k) * np.exp(-3.56e3 * ua / temp_k)
        tn = temp_k / (273.15 + 35.0)
        return 2.66e7 * np.exp(-17.8 / tn) * np.exp(-5.21 * (ua / 0.123) / tn)

    def cycle_stress(self, dod: np.ndarray, c_rate_per_h: np.ndarray) -> np.ndarray:
        """Depth- and C-rate factor of the cycling-loss coefficient (temperature apart)."""
        dod = np.asarray(dod, dtype=float)
        if self.chemistry == "LFP":
            return 4.38e-8 + 1.55e-8 * dod + 1.68e-7 * np.asarray(c_rate_per_h, dtype=float)
        return 3.80e3 * np.exp(1.04 * np.exp(dod**2))

    def cycle_temperature(self, temp_k: np.ndarray) -> np.ndarray:
        """Temperature factor of the cycling-loss coefficient."""
        if self.chemistry == "LFP":
            return np.exp(2.19e3 / temp_k) + np.exp(-1.55e5 / temp_k)
        return np.exp(-18.4 * (273.15 + 35.0) / temp_k)

    def cycle_rate(
        self, dod: np.ndarray, c_rate_per_h: np.ndarray, temp_k: np.ndarray
    ) -> np.ndarray:
        """Cycling-loss coefficient (fraction of capacity per EFC ** cyc_exp) of a cycle."""
        return self.cycle_stress(dod, c_rate_per_h) * self.cycle_temperature(temp_k)

    def lam_half_life_efc(
        self, dod: np.ndarray, mean_soc: np.ndarray, temp_k: np.ndarray
    ) -> np.ndarray:
        """EFC at which the NMC's active-material loss reaches half its sigmoid."""
        return 1e4 + 153.0 * (temp_k - 273.15 - 55.0) * dod * (mean_soc / 0.6)

    def resistance_coefficients(self) -> tuple[float, float, float, float]:
        """(calendar gain per q1, its exponent, cycling gain per q3, its exponent) for NMC."""
        return 0.0570, 1.25, 4.87, 0.712


LFP = Cell("lfp_gr_250ah_prismatic_2019", "LFP", 0.526, 0.828, False, 1.5)
NMC = Cell("nmc111_gr_kokam75ah_2017", "NMC", 0.357, 0.778, True, 0.0)
CELLS = {"LFP": LFP, "NMC": NMC}


def cell_for(chemistry: str) -> Cell:
    """The ageing model of a chemistry name ('LFP' or 'NMC'), or an error naming the choices."""
    key = chemistry.upper()
    if key not in CELLS:
        msg = f"chemistry: {chemistry!r} is not modelled; expected one of {sorted(CELLS)}"
        raise ValueError(msg)
    return CELLS[key]
