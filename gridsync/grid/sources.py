"""Bring your own network: a scenario's ``network.path`` (or ``network.feeder``) may name

* ``bundled:feeders/x.json`` or any pandapower JSON file,
* ``pandapower:<function>``: any function of ``pandapower.networks`` (``pandapower:case33bw``;
  arguments after ``?``: ``pandapower:create_cigre_network_mv?with_der=all``),
* ``simbench:<code>``: a SimBench grid with its own 2016 load profiles
  (``simbench:1-LV-rural1--0-sw``; the SimBench package bundles the data, nothing downloads),
* a MATPOWER case file (``.m`` or ``.mat``).

The network is indexed as a ``Feeder`` over its energised buses; buses that carry no voltage
(out of service, or in an island without a slack) are left out and listed in ``deenergised``.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.grid.topology import deenergised_buses
from gridsync.model.network import Feeder, feeder_from_net, resolve_data_path

log = logging.getLogger(__name__)

PANDAPOWER_PREFIX = "pandapower:"
SIMBENCH_PREFIX = "simbench:"


@dataclass
class NetworkSource:
    """A loaded network: the feeder, the load profiles it ships with (SimBench; else None) and
    the pandapower indices of the buses left out as de-energised."""

    feeder: Feeder
    profiles: pd.DataFrame | None
    deenergised: np.ndarray


def _arguments(query: str) -> dict:
    """``a=1&b=x`` -> {"a": 1, "b": "x"} (Python literals where they parse, else strings)."""
    import ast

    out = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep or not key.isidentifier():
            msg = f"pandapower network argument {part!r}: expected name=value"
            raise ValueError(msg)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _pandapower_net(ref: str):
    import pandapower.networks as pn

    name, _, query = ref.partition("?")

    func = getattr(pn, name, None)
    if not callable(func) or name.startswith("_"):
        known = sorted(n for n in dir(pn) if n.startswith(("case", "create_", "mv_", "example")))
        msg = f"pandapower.networks has no network {name!r}; e.g. {', '.join(known[:12])} ..."
        raise ValueError(msg)
    kwargs = _arguments(query)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(**kwargs)
        except TypeError as err:
            msg = f"pandapower.networks.{name}({query}): {err}"
            raise ValueError(msg) from None


@functools.lru_cache(maxsize=4)
def _simbench(code: str):
    """SimBench net and its load profiles (``time`` index, ``<profile>_pload``/``_qload``);
    cached because building a SimBench net takes seconds."""
    import simbench as sb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = sb.get_simbench_net(code)
        except Exception as err:  # simbench raises bare errors for unknown codes
            msg = f"SimBench code {code!r} is not known to simbench ({err})"
            raise ValueError(msg) from None
    loads = net.profiles["load"].copy()
    loads.index = pd.DatetimeIndex(pd.to_datetime(loads.pop("time"), dayfirst=True), name="time")
    return net, loads.astype(float)


def _matpower_net(path: Path):
    from pandapower.converter.matpower.from_mpc import from_mpc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_mpc(str(path), f_hz=50)


def read_network(ref: str, base_dir: Path | None = None) -> tuple[object, str, pd.DataFrame | None]:
    """The pandapower net named by ``ref``, its name and (SimBench only) its load profiles."""
    import copy

    import pandapower as pp

    if ref.startswith(PANDAPOWER_PREFIX):
        name = ref[len(PANDAPOWER_PREFIX) :]
        return _pandapower_net(name), name.replace("?", "_"), None
    if ref.startswith(SIMBENCH_PREFIX):
        code = ref[len(SIMBENCH_PREFIX) :]
        net, profiles = _simbench(code)
        return copy.deepcopy(net), code, profiles
    path = resolve_data_path(ref, base_dir)
    if not path.exists():
        msg = f"network file {str(path)!r} does not exist"
        raise FileNotFoundError(msg)
    if path.suffix.lower() in (".m", ".mat"):
        return _matpower_net(path), path.stem, None
    if path.suffix.lower() != ".json":
        msg = (
            f"network {ref!r}: expected a pandapower .json, a MATPOWER .m/.mat file, "
            "'pandapower:<function>' or 'simbench:<code>'"
        )
        raise ValueError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pp.from_json(str(path)), path.stem, None


def load_network(ref: str, base_dir: Path | None = None) -> NetworkSource:
    """Read ``ref`` and index its energised part as a Feeder (de-energised buses logged)."""
    net, name, profiles = read_network(ref, base_dir)
    dead = deenergised_buses(net)
    if len(dead):
        log.warning(
            "network %s: %d de-energised bus(es) left out of the feeder (out of service or in an "
            "island without a slack): %s",
            name,
            len(dead),
            ", ".join(map(str, net.bus.loc[dead].name.fillna("").astype(str).tolist()[:10])),
        )
    return NetworkSource(feeder_from_net(net, name, exclude_bus_ids=dead), profiles, dead)
