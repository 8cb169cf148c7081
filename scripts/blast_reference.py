"""Run NREL BLAST-Lite on the shared duty cycles and store its capacity-fade trajectories.

BLAST-Lite 1.1.1 pins numpy < 2, which the project's venv cannot take, so it runs in its own
environment and its output is committed as the independent reference of tests/storage:

    python3.11 -m venv /tmp/blastenv && /tmp/blastenv/bin/pip install 'blast-lite==1.1.1'
    /tmp/blastenv/bin/python scripts/blast_reference.py

Reads tests/storage/data/duty_cycles.json, writes tests/storage/data/blast_reference.json:
per cell model and duty cycle, BLAST-Lite's relative capacity every half year over 10 years.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from blast import models

DATA = Path(__file__).resolve().parents[1] / "tests" / "storage" / "data"
CELLS = {"LFP": models.Lfp_Gr_250AhPrismatic, "NMC": models.Nmc111_Gr_Kokam75Ah_Battery}
YEARS = 10
MARKS_Y = np.arange(0.5, YEARS + 0.01, 0.5)


def one_year(spec: dict) -> dict:
    """Hourly SoC and temperature of one year of the duty cycle (8761 points)."""
    day = np.asarray(spec["soc_day"], dtype=float)
    soc = np.r_[np.tile(day[:-1], 365), day[-1]]
    hours = np.arange(len(soc), dtype=float)
    temp = spec["temp_mean_c"] + spec["temp_amplitude_c"] * np.cos(
        2 * np.pi * (hours / 24.0 - 200.0) / 365.0
    )
    return {"Time_s": hours * 3600.0, "SOC": soc, "Temperature_C": temp}


def main() -> None:
    duty = json.loads((DATA / "duty_cycles.json").read_text())["duty_cycles"]
    out = {
        "about": "BLAST-Lite relative capacity q (1 = new) at years_marks, each duty cycle's "
        "one-year profile repeated (simulate_battery_life, threshold_time=10, conserving "
        "energy throughput); produced by scripts/blast_reference.py",
        "blast_lite_version": version("blast-lite"),
        "years_marks": MARKS_Y.tolist(),
        "trajectories": {},
    }
    for chem, model_cls in CELLS.items():
        out["trajectories"][chem] = {"model": model_cls.__name__, "duty_cycles": {}}
        for name, spec in duty.items():
            cell = model_cls()
            cell.simulate_battery_life(one_year(spec), threshold_time=YEARS)
            years = np.asarray(cell.stressors["t_days"], dtype=float) / 365.0
            q = np.asarray(cell.outputs["q"], dtype=float)
            marks = np.interp(MARKS_Y, years, q)
            out["trajectories"][chem]["duty_cycles"][name] = [round(float(v), 6) for v in marks]
            print(f"{chem} {name}: q(10 y) = {marks[-1]:.4f}")
    (DATA / "blast_reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
