"""Build a feeder's ``PowerFlowModel`` from its pandapower net.

The customer loads and the fleet's PV sgens (what a scenario drives per step) are zeroed and
pandapower's converter (``gridsync.grid.topology``) builds the rest: every other element stays
in the model as a fixed injection, branch ratings and names come from the line and
transformer tables, and a feeder bus that carries no voltage is an error naming it.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import scipy.sparse as sp

from gridsync.grid.powerflow import SQRT3, PowerFlowModel, PowerFlowNotConverged
from gridsync.model.network import Feeder, fleet_sgen_mask


def _names(df) -> list[str]:
    """Element names, the pandapower index where a name is missing."""
    return np.where(df.name.isna(), df.index.astype(str), df.name.astype(str)).tolist()


def _branch_tables(nm, feeder: Feeder):
    """Names, kinds, ratings (kA) and internal rows of the in-service lines and transformers."""
    net = feeder.net
    lookup = pd_lookup(feeder)
    names, kinds, r_from, r_to, rows, f_pos, t_pos = [], [], [], [], [], [], []
    ln_pos, ln_rows = nm.branch_rows("line")
    if len(ln_pos):
        ln = net.line.iloc[ln_pos]
        imax = (ln.max_i_ka * ln.df * ln.parallel).to_numpy(dtype=float)
        names += [f"line:{n}" for n in _names(ln)]
        kinds += ["line"] * len(ln)
        r_from.append(imax)
        r_to.append(imax)
        rows.append(ln_rows)
        f_pos.append(lookup[ln.from_bus.to_numpy()])
        t_pos.append(lookup[ln.to_bus.to_numpy()])
    tr_pos, tr_rows = nm.branch_rows("trafo")
    if len(tr_pos):
        tr = net.trafo.iloc[tr_pos]
        scale = (tr.sn_mva * tr.df * tr.parallel).to_numpy(dtype=float)
        names += [f"trafo:{n}" for n in _names(tr)]
        kinds += ["trafo"] * len(tr)
        r_from.append(scale / (SQRT3 * tr.vn_hv_kv.to_numpy(dtype=float)))
        r_to.append(scale / (SQRT3 * tr.vn_lv_kv.to_numpy(dtype=float)))
        rows.append(tr_rows)
        f_pos.append(lookup[tr.hv_bus.to_numpy()])
        t_pos.append(lookup[tr.lv_bus.to_numpy()])
    cat = lambda xs, dt=float: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return names, kinds, cat(r_from), cat(r_to), cat(rows, int), cat(f_pos, int), cat(t_pos, int)


def pd_lookup(feeder: Feeder) -> np.ndarray:
    """Feeder position per pandapower bus index (-1 for buses not in the feeder)."""
    out = np.full(int(feeder.net.bus.index.max()) + 1, -1, dtype=int)
    out[feeder.bus_ids] = np.arange(feeder.n_bus)
    return out


def build_feeder_model(feeder: Feeder) -> PowerFlowModel:
    """The admittance model of ``feeder``: pandapower's converter on the net with the customer
    loads and the fleet's PV zeroed (they are supplied per snapshot); everything else stays."""
    from gridsync.grid.topology import build_network_model

    net = copy.deepcopy(feeder.net)
    if len(net.load):
        net.load[["p_mw", "q_mvar"]] = 0.0
    if len(net.sgen):
        net.sgen.loc[fleet_sgen_mask(net), ["p_mw", "q_mvar"]] = 0.0
    nm = build_network_model(net)
    ppc_of_bus = nm.internal_bus(feeder.bus_ids)
    dead = ppc_of_bus < 0
    if dead.any():
        names = ", ".join(map(str, feeder.bus_names[dead][:10]))
        msg = (
            f"feeder {feeder.name}: {int(dead.sum())} bus(es) are de-energised (out of service or "
            f"in an island without a slack): {names}; build the feeder with load_network/"
            "feeder_from_net(..., exclude_bus_ids=...) to leave them out"
        )
        raise ValueError(msg)
    n_ppc = nm.n_bus
    bus_to_ppc = sp.csr_matrix(
        (np.ones(feeder.n_bus), (ppc_of_bus, np.arange(feeder.n_bus))), shape=(n_ppc, feeder.n_bus)
    )
    vn_kv = nm.ppci["bus"][:, 9].real
    names, kinds, r_from, r_to, rows, f_pos, t_pos = _branch_tables(nm, feeder)
    f_int = nm.ppci["branch"][rows, 0].real.astype(int)
    t_int = nm.ppci["branch"][rows, 1].real.astype(int)
    loss_rows = np.concatenate(
        [nm.branch_rows(e)[1] for e in ("line", "trafo", "trafo3w", "impedance")]
    ).astype(int)
    br = nm.ppci["branch"]
    loss_y = (
        nm.yf[loss_rows],
        nm.yt[loss_rows],
        br[loss_rows, 0].real.astype(int),
        br[loss_rows, 1].real.astype(int),
    )
    model = PowerFlowModel(
        ybus=nm.ybus,
        yf=nm.yf[rows],
        yt=nm.yt[rows],
        base_mva=nm.base_mva,
        ref=int(nm.ref[0]),
        pq=nm.pq,
        v_init=nm.v0,
        bus_to_ppc=bus_to_ppc,
        ppc_of_bus=ppc_of_bus,
        branch_names=np.array(names),
        branch_kind=np.array(kinds),
        branch_from_pos=f_pos,
        branch_to_pos=t_pos,
        i_base_from_ka=nm.base_mva / (SQRT3 * vn_kv[f_int]),
        i_base_to_ka=nm.base_mva / (SQRT3 * vn_kv[t_int]),
        rating_from=r_from,
        rating_to=r_to,
        refs=nm.ref,
        pv=nm.pv,
        bus_names=feeder.bus_names,
        s_fixed=nm.s_gen - nm.s_load,
        s_fixed_i=nm.s_load_i,
        s_fixed_z=nm.s_load_z,
        loss_y=loss_y,
        load_zip_frac=nm.zip_frac,
        dc=(nm.bdc, nm.p_dc_offset),
    )
    # start from the no-load solution (the fixed-point iteration wants a good start); with PV
    # generators from the nominal snapshot, whose no-load point can be far off or spurious
    p, q = np.zeros(feeder.n_bus), np.zeros(feeder.n_bus)
    if len(model.pv):
        p, q = nominal_consumption(feeder)
    with contextlib.suppress(PowerFlowNotConverged):  # then pandapower's start stays
        v_dc = model.dc_start(model.injections_pu(p, q)) if len(model.pv) else None
        _, model.v_init = model.solve(p, q, v0=v_dc, max_iter=30)
    return model


def nominal_consumption(feeder: Feeder) -> tuple[np.ndarray, np.ndarray]:
    """Consumption by bus (kW, kvar) of the elements the model leaves to the snapshot: the
    feeder's loads at nominal power and its fleet sgens at rated power (as injection)."""
    p, q = np.zeros(feeder.n_bus), np.zeros(feeder.n_bus)
    np.add.at(p, feeder.load_bus_pos, feeder.load_p_kw)
    np.add.at(q, feeder.load_bus_pos, feeder.load_q_kvar)
    net = feeder.net
    sg = net.sgen[fleet_sgen_mask(net) & net.sgen.bus.isin(feeder.bus_ids).to_numpy()]
    scaling = sg["scaling"].to_numpy(dtype=float) if "scaling" in sg else 1.0
    at = feeder.bus_pos(sg.bus.to_numpy())
    np.add.at(p, at, -sg.p_mw.to_numpy(dtype=float) * scaling * 1e3)
    np.add.at(q, at, -sg.q_mvar.to_numpy(dtype=float) * scaling * 1e3)
    return p, q
