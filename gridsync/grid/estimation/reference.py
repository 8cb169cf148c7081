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
    import pandas as pd
    from pandapower.estimation import estimate as pp_estimate

    if np.any(np.isin(ms.kind, (IRE, IIM))):
        msg = "pandapower's estimator has no branch current phasor measurements; drop IRE/IIM rows"
        raise ValueError(msg)
    net = copy.deepcopy(feeder.net) if net is None else net
    # the same rows pandapower.create_measurement would add, built in one go
    scale = np.array([_PP_SCALE[k] for k in ms.kind])
    net.measurement = pd.DataFrame(
        {
            "name": None,
            "measurement_type": [_PP_TYPE[k] for k in ms.kind],
            "element_type": "bus",
            "element": feeder.bus_ids[ms.loc].astype(np.uint32),
            "value": ms.value * scale,
            "std_dev": ms.std * scale,
            "side": None,
        }
    )
    bus_ids = feeder.bus_ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = bool(pp_estimate(net, init="flat", algorithm="wls"))
    vm = net.res_bus_est.vm_pu.loc[bus_ids].to_numpy(dtype=float)
    va = np.radians(net.res_bus_est.va_degree.loc[bus_ids].to_numpy(dtype=float))
    return vm, va, ok
