"""Extract a SimBench feeder and its 2016 load profiles into gridsync/data (run once, offline).

SimBench (simbench.de, ODbL) bundles the networks and a year of 15-minute profiles; GridSync
ships only the slice it uses so that `make run` needs neither the 380 MB package nor its 5 s
load time. Usage: python scripts/extract_simbench.py [CODE]  (needs `pip install simbench`).
"""

import sys
from pathlib import Path

import pandapower as pp
import pandas as pd
import simbench as sb

DATA = Path(__file__).resolve().parents[1] / "gridsync" / "data"


def main(code: str = "1-LV-semiurb5--0-sw") -> None:
    net = sb.get_simbench_net(code)
    used = sorted(net.load.profile.unique())
    cols = [f"{p}_{kind}" for p in used for kind in ("pload", "qload")]
    prof = net.profiles["load"][["time", *cols]].copy()
    # SimBench stamps are wall-clock time with DST (a gap in March, a repeated hour in October)
    # while the rows are consecutive quarter hours: re-stamp them in standard time (CET).
    start = pd.to_datetime(prof["time"].iloc[0], format="%d.%m.%Y %H:%M")
    prof["time"] = pd.date_range(start, periods=len(prof), freq="15min").strftime("%Y-%m-%d %H:%M")
    slug = code.strip("-").replace("--0-sw", "").replace("1-", "").replace("-", "_").lower()
    prof.to_csv(
        DATA / "profiles" / f"simbench_{slug}_load_2016.csv.gz", index=False, float_format="%.6g"
    )
    for key in list(net.keys()):
        if key.startswith("res_") or key == "profiles":
            net[key] = net[key].iloc[0:0] if hasattr(net[key], "iloc") else net[key]
    net.profiles = {}
    pp.to_json(net, str(DATA / "feeders" / f"simbench_{slug}.json"))
    print(f"wrote feeder and {len(used)} profiles for {code}")


if __name__ == "__main__":
    main(*sys.argv[1:])
