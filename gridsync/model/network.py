"""Feeder network as data: pandapower's element tables plus the arrays the agents need.

A ``Feeder`` is read once from a pandapower JSON file (the bundled SimBench feeder or a user's
own) and never changes afterwards; algorithms are functions over it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

BUNDLED_PREFIX = "bundled:"


@dataclass(frozen=True)
class Feeder:
    """A distribution feeder: buses, branches, customer load points and the feeder head.

    Bus-indexed arrays use *positions* ``0..n_bus-1`` in the order of ``bus_ids`` (pandapower's
    own bus index values, which need not be contiguous).
    """

    name: str
    net: object
    bus_ids: np.ndarray
    bus_names: np.ndarray
    vn_kv: np.ndarray
    slack_pos: int
    load_bus_pos: np.ndarray
    load_profile: np.ndarray
    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    bus_xy: np.ndarray

    @property
    def n_bus(self) -> int:
        return len(self.bus_ids)

    @property
    def customer_buses(self) -> np.ndarray:
        """Positions of buses with at least one customer load (where assets can connect)."""
        return np.unique(self.load_bus_pos)

    def bus_pos(self, bus_ids: np.ndarray | list[int]) -> np.ndarray:
        lookup = pd.Series(np.arange(self.n_bus), index=self.bus_ids)
        return lookup.loc[np.asarray(bus_ids)].to_numpy()


def resolve_data_path(ref: str, base_dir: Path | None = None) -> Path:
    """Turn ``bundled:feeders/x.json`` or a relative/absolute path into a real path."""
    if ref.startswith(BUNDLED_PREFIX):
        return Path(str(resources.files("gridsync") / "data" / ref[len(BUNDLED_PREFIX) :]))
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _geo_xy(net) -> np.ndarray:
    xy = np.full((len(net.bus), 2), np.nan)
    if "geo" not in net.bus:
        return xy
    for i, geo in enumerate(net.bus.geo.to_numpy()):
        if isinstance(geo, str) and geo:
            coords = json.loads(geo).get("coordinates")
            if coords and len(coords) == 2:
                xy[i] = coords
    return xy


def load_feeder(path: Path) -> Feeder:
    """Load a pandapower JSON network and index it for GridSync."""
    import pandapower as pp

    if not path.exists():
        msg = f"network file {str(path)!r} does not exist"
        raise FileNotFoundError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pp.from_json(str(path))
    return feeder_from_net(net, path.stem)


def fleet_sgen_mask(net) -> np.ndarray:
    """Static generators a scenario drives as its PV fleet (in service, ``type`` PV or no type
    column); other sgens (wind, CHP, ...) stay fixed injections of the network."""
    sg = net.sgen
    if "type" not in sg:
        return sg.in_service.to_numpy(dtype=bool)
    return (sg.in_service & (sg["type"] == "PV")).to_numpy(dtype=bool)


def feeder_from_net(net, name: str, exclude_bus_ids=()) -> Feeder:
    """Index an in-memory pandapower net as a Feeder.

    The feeder holds the in-service buses except ``exclude_bus_ids`` (the de-energised ones
    from ``gridsync.grid.topology.deenergised_buses``); its loads are the in-service loads
    there, at ``p_mw * scaling``. The feeder head is the first in-service ext_grid (or slack
    generator); further ext_grids are slacks too.
    """
    keep = net.bus.in_service.to_numpy(dtype=bool) & ~net.bus.index.isin(list(exclude_bus_ids))
    bus_ids = net.bus.index.to_numpy()[keep]
    lookup = pd.Series(np.arange(len(bus_ids)), index=bus_ids)
    heads = net.ext_grid[net.ext_grid.in_service & net.ext_grid.bus.isin(bus_ids)].bus.to_numpy()
    if not len(heads) and len(net.gen) and "slack" in net.gen:
        gen = net.gen
        heads = gen[gen.in_service & gen.slack & gen.bus.isin(bus_ids)].bus.to_numpy()
    if not len(heads):
        msg = f"network {name}: no in-service ext_grid (or slack gen) on an energised bus"
        raise ValueError(msg)
    loads = net.load[net.load.in_service & net.load.bus.isin(bus_ids)]
    scaling = loads["scaling"].to_numpy(dtype=float) if "scaling" in loads else 1.0
    profile = (
        loads["profile"].astype(str).to_numpy()
        if "profile" in loads
        else np.full(len(loads), "", dtype=object)
    )
    bus = net.bus[keep]
    return Feeder(
        name=name,
        net=net,
        bus_ids=bus_ids,
        bus_names=np.where(bus.name.isna(), bus.index.astype(str), bus.name.astype(str)),
        vn_kv=bus.vn_kv.to_numpy(dtype=float),
        slack_pos=int(lookup.loc[int(heads[0])]),
        load_bus_pos=lookup.loc[loads.bus.to_numpy()].to_numpy(),
        load_profile=profile,
        load_p_kw=loads.p_mw.to_numpy(dtype=float) * scaling * 1e3,
        load_q_kvar=loads.q_mvar.to_numpy(dtype=float) * scaling * 1e3,
        bus_xy=_geo_xy(net)[keep],
    )
