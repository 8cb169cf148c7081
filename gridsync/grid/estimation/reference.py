"""pandapower's WLS estimator on the same measurements: the reference our estimator is checked
and benchmarked against.

pandapower expects bus powers in MW/Mvar with the LOAD sign convention (as in ``res_bus``),
voltages in p.u. and angles in degrees; branch current phasors have no pandapower equivalent.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from gridsync.grid.estimation.measurements import IIM, IRE, VA, VM, MeasurementSet, P, Q
from gridsync.model.network import Feeder

_PP_TYPE = {VM: "v", VA: "va", P: "p", Q: "q"}
_PP_SCALE = {VM: 1.0, VA: np.degrees(1.0), P: 1e-3, Q: 1e-3}


def pandapower_estimate(
    feeder: Feeder, ms: MeasurementSet, net=None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Run ``pandapower.estimation.estimate(init='flat', algorithm='wls')`` on ``ms``.

    Returns (vm_pu, va_rad) by feeder bus position and pandapower's success flag. Pass a
    prepared ``net`` (``feeder.net`` copy) to skip the copy when calling repeatedly.
    """
    import pandapower as pp
    from pandapower.estimation import estimate as pp_estimate

    if np.any(np.isin(ms.kind, (IRE, IIM))):
        msg = "pandapower's estimator has no branch current phasor measurements; drop IRE/IIM rows"
        raise ValueError(msg)
    net = copy.deepcopy(feeder.net) if net is None else net
    net.measurement = net.measurement.iloc[0:0]
    bus_ids = feeder.bus_ids
    for k in (VM, VA, P, Q):
        rows = np.flatnonzero(ms.kind == k)
        for i in rows:
            pp.create_measurement(
                net,
                _PP_TYPE[k],
                "bus",
                float(ms.value[i] * _PP_SCALE[k]),
                float(ms.std[i] * _PP_SCALE[k]),
                element=int(bus_ids[ms.loc[i]]),
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = bool(pp_estimate(net, init="flat", algorithm="wls"))
    vm = net.res_bus_est.vm_pu.loc[bus_ids].to_numpy(dtype=float)
    va = np.radians(net.res_bus_est.va_degree.loc[bus_ids].to_numpy(dtype=float))
    return vm, va, ok
