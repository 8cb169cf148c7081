"""Larger test networks made from real ones: copies of a feeder on a shared MV ring-main.

Used by benchmarks to measure how the twin scales with bus count without shipping more data.
"""

from __future__ import annotations

import copy
import warnings

MV_CABLE = "NA2XS2Y 1x185 RM/25 12/20 kV"


def replicate_feeder_net(net, copies: int, mv_cable_km: float = 0.4):
    """``copies`` copies of ``net`` whose feeder heads hang off one MV bus by MV cables.

    The first copy keeps its external grid; every other copy's external-grid bus is tied to it
    by a cable of ``mv_cable_km`` km per position (a radial MV string), so bus count grows
    linearly while every LV feeder stays real.
    """
    import pandapower as pp
    import pandapower.toolbox as tb

    if copies < 1:
        msg = f"copies must be >= 1, got {copies}"
        raise ValueError(msg)
    import pandas as pd

    template = copy.deepcopy(net)
    # merge_nets needs integer indices; SimBench's study-case table is keyed by name
    for key, table in list(template.items()):
        if (
            isinstance(table, pd.DataFrame)
            and len(table)
            and not pd.api.types.is_integer_dtype(table.index)
        ):
            template[key] = table.iloc[0:0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = copy.deepcopy(template)
        for _ in range(copies - 1):
            merged = tb.merge_nets(
                merged, copy.deepcopy(template), validate=False, merge_results=False
            )
    heads = merged.ext_grid.bus.to_numpy()
    previous = heads[0]
    for bus in heads[1:]:
        pp.create_line(
            merged, previous, bus, mv_cable_km, MV_CABLE, name=f"mv tie {previous}-{bus}"
        )
        previous = bus
    merged.ext_grid.drop(merged.ext_grid.index[1:], inplace=True)
    return merged
