"""Write Kerber's extreme village feeder with SimBench household profiles to gridsync/data.

Kerber's reference LV networks (G. Kerber, TU Munich 2011) model German LV grids and ship with
pandapower; ``kb_extrem_dorfnetz`` is his "extreme" village network, standing for the weakest
village grids: a 400 kVA 10/0.4 kV transformer and 58 houses on ~3.1 km of NAYY cable, most of
them far from the transformer (0.91 p.u. at Kerber's design load, against 0.955 for the typical
village network). Kerber gives every house a 6 kW design load; GridSync needs a time series per
load, so each house gets one of the five SimBench household profiles (H0-A/B/C/G/L, in the
bundled 2016 profile file) and a peak ``p_kw`` that makes its 2016 consumption a seeded draw of
2,500-5,500 kWh/year (German single-family houses use ~3,500-4,500 kWh/year before heat pumps
and EVs). Reactive power follows SimBench's household ratio q/p = 0.395 (power factor 0.93). The MV
side is held at 1.025 p.u., the set-point SimBench uses for its LV grids (Kerber's nets use
1.0), as DSOs raise the secondary voltage of long rural feeders to leave room for the drop.
Usage: python scripts/extract_kerber.py  (only pandapower needed; deterministic).
"""

from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "gridsync" / "data"
PROFILES = DATA / "profiles" / "simbench_lv_semiurb5_load_2016.csv.gz"
HOUSEHOLD_PROFILES = ["H0-A", "H0-B", "H0-C", "H0-G", "H0-L"]
ANNUAL_KWH = (2500.0, 5500.0)
Q_OVER_P = 0.395
MV_SETPOINT_PU = 1.025


def main() -> None:
    net = pn.kb_extrem_dorfnetz()
    prof = pd.read_csv(PROFILES)
    kwh_per_kw = {p: prof[f"{p}_pload"].sum() * 0.25 for p in HOUSEHOLD_PROFILES}
    rng = np.random.default_rng(2011)
    n = len(net.load)
    names = [HOUSEHOLD_PROFILES[i % len(HOUSEHOLD_PROFILES)] for i in range(n)]
    annual = rng.uniform(*ANNUAL_KWH, n)
    p_kw = np.array([a / kwh_per_kw[p] for a, p in zip(annual, names, strict=True)])
    net.load["profile"] = names
    net.load["p_mw"] = np.round(p_kw, 3) / 1e3
    net.load["q_mvar"] = np.round(p_kw * Q_OVER_P, 3) / 1e3
    net.load["name"] = [f"house {i + 1}" for i in range(n)]
    net.ext_grid["vm_pu"] = MV_SETPOINT_PU
    out = DATA / "feeders" / "kerber_extreme_dorfnetz.json"
    pp.to_json(net, str(out))
    print(f"wrote {out.name}: {len(net.bus)} buses, {n} houses, {annual.sum() / 1e3:.0f} MWh/year")


if __name__ == "__main__":
    main()
