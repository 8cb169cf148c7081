"""Extract Taylor's half-hourly England & Wales demand (June-August 2000) from pmdarima (run once).

pmdarima (MIT licence, PyPI) ships the 4,032 half-hourly values (MW) of J.W. Taylor (2003),
"Short-term electricity demand forecasting using double seasonal exponential smoothing",
JORS 54, 799-805, as a literal array in ``pmdarima/datasets/taylor.py``. This script reads that
array from the wheel without importing pmdarima (so it need not be installed), stamps it
Monday 2000-06-05 00:00 onwards every 30 min (local clock; the window has no DST change) and
writes gridsync/data/demand/taylor_ew_halfhourly_2000.csv.gz. Usage:

    python3 -m pip download pmdarima==2.1.1 --no-deps -d /tmp/pmd
    python scripts/extract_taylor.py /tmp/pmd/pmdarima-2.1.1-*.whl
"""

import ast
import gzip
import sys
import zipfile
from pathlib import Path

import pandas as pd

OUT = (
    Path(__file__).resolve().parents[1]
    / "gridsync"
    / "data"
    / "demand"
    / "taylor_ew_halfhourly_2000.csv.gz"
)


def taylor_values(wheel: Path) -> list[int]:
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("pmdarima/datasets/taylor.py").decode()
    for node in ast.walk(ast.parse(source)):
        # rslt = np.array([...]).astype(dtype): the only list literal in the module
        if isinstance(node, ast.List) and len(node.elts) > 1000:
            return [int(ast.literal_eval(e)) for e in node.elts]
    raise ValueError(f"{wheel}: no value list found in pmdarima/datasets/taylor.py")


def main(wheel: str) -> None:
    values = taylor_values(Path(wheel))
    if len(values) != 4032:
        raise ValueError(f"expected 4032 half-hours (12 weeks), got {len(values)}")
    time = pd.date_range("2000-06-05 00:00", periods=len(values), freq="30min")
    csv = pd.DataFrame({"time": time.strftime("%Y-%m-%d %H:%M"), "demand_mw": values})
    with gzip.GzipFile(OUT, "wb", mtime=0) as fh:  # mtime=0: byte-identical reruns
        fh.write(csv.to_csv(index=False).encode())
    print(f"wrote {OUT} ({len(values)} rows, {time[0]} .. {time[-1]})")


if __name__ == "__main__":
    main(*sys.argv[1:])
