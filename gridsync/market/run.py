"""One market run: P2P trading, settlement, credits, carbon, grid check, ledger, statements.

Privacy: the ledger and the public summary never carry participant numbers. Participants
appear under keyed pseudonyms (HMAC-SHA256 with the operator's secret), so an auditor can check
that trades, meter readings and credits add up without learning who is who. Each participant
sees only their own statement (``statement``); statements are stored encrypted (Fernet,
AES-128-CBC + HMAC) under a key derived per participant, so one key opens one statement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, replace

import numpy as np

from gridsync.ledger.backend import LedgerBackend
from gridsync.market import carbon
from gridsync.market.agents import MarketConfig
from gridsync.market.credits import (
    COMMUNITY,
    CreditBank,
    green_delivered_kwh,
    shifted_into_green_kwh,
)
from gridsync.market.network import Limits
from gridsync.market.p2p import P2PResult, run_p2p
from gridsync.market.settlement import Settlement, make_whole, settle, statement
from gridsync.market.twin_state import asset_load_by_bus_kw


@dataclass
class MarketRun:
    result: P2PResult
    baseline: P2PResult
    settlement: Settlement
    baseline_settlement: Settlement
    bank: CreditBank
    summary: dict
    pseudonyms: list[str]

    def statement(self, participant: int) -> dict:
        """What participant ``participant`` may see: their own trades and bill only."""
        if not 0 <= participant < len(self.pseudonyms):
            msg = f"participant {participant}: expected 0..{len(self.pseudonyms) - 1}"
            raise ValueError(msg)
        out = statement(participant, self.result, self.settlement, self.baseline_settlement)
        out["pseudonym"] = self.pseudonyms[participant]
        out["credits"] = self.bank.balances.get(participant, 0.0)
        out["carbon_avoided_kg"] = float(self.summary_arrays["carbon_kg"][participant])
        return out

    summary_arrays: dict | None = None


def pseudonym(secret: bytes, participant: int) -> str:
    return hmac.new(secret, f"participant:{participant}".encode(), hashlib.sha256).hexdigest()[:16]


def statement_key(secret: bytes, name: str) -> bytes:
    """The Fernet key that opens the statement of the participant called ``name``."""
    digest = hmac.new(secret, f"statement:{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


def seal_statement(statement: dict, key: bytes) -> bytes:
    from cryptography.fernet import Fernet

    return Fernet(key).encrypt(json.dumps(statement).encode())


def open_statement(token: bytes, key: bytes) -> dict:
    """Decrypt a sealed statement; a wrong key or an altered file raises ``ValueError``."""
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return json.loads(Fernet(key).decrypt(token))
    except (InvalidToken, ValueError) as err:
        msg = "statement: wrong key, or the file was altered"
        raise ValueError(msg) from err


def run_market(
    scenario,
    cfg: MarketConfig | None = None,
    ledger: LedgerBackend | None = None,
    secret: bytes = b"",
    forecast_net_kw: np.ndarray | None = None,
    limits: Limits | None = None,
    redeem_share: float = 0.5,
    donate_share: float = 0.1,
    asset_kw: np.ndarray | None = None,
) -> MarketRun:
    """Run the market and its no-market counterfactual (same agents, no trading) and compare.

    ``asset_kw`` (n_steps, n_bus) is the EV, heat-pump and appliance load behind the meters
    (default: stepped on the twin under the uncontrolled rules, ``asset_load_by_bus_kw``); it
    is in every meter, position, network check and KPI. Credits: participants donate
    ``donate_share`` of their credits to the community pool and redeem ``redeem_share`` of the
    rest at ``cfg.credit_value_eur``.
    """
    cfg = cfg or MarketConfig()
    if asset_kw is None:
        asset_kw = asset_load_by_bus_kw(scenario)
    result = run_p2p(scenario, cfg, forecast_net_kw, limits, asset_kw)
    baseline = run_p2p(
        scenario, replace(cfg, auto_trade_share=0.0), forecast_net_kw, limits, asset_kw
    )
    st0 = settle(baseline, scenario, cfg)
    st = make_whole(settle(result, scenario, cfg), st0)
    n_p = len(result.participants)
    names = [pseudonym(secret, p) for p in range(n_p)]
    carbon_g = scenario.carbon_g_per_kwh[result.steps]

    bank = CreditBank(credit_value_eur=cfg.credit_value_eur)
    green = green_delivered_kwh(result.sold_kwh, result.metered_kwh)
    shifted = shifted_into_green_kwh(result.battery_bought_kwh, carbon_g, cfg.low_carbon_quantile)
    t_idx, p_idx = np.nonzero(green > 1e-9)
    bank.mint_many(
        p_idx, green[t_idx, p_idx] * cfg.credits_per_kwh, "green_delivered", result.steps[t_idx]
    )
    t_idx, p_idx = np.nonzero(shifted > 1e-9)
    bank.mint_many(
        p_idx,
        shifted[t_idx, p_idx] * cfg.reward_credits_per_kwh,
        "green_shift",
        result.steps[t_idx],
    )
    redeemed_eur = 0.0
    for p in range(n_p):
        held = bank.balances.get(p, 0.0)
        if held > 0 and donate_share > 0:
            bank.transfer(p, COMMUNITY, held * donate_share)
        held = bank.balances.get(p, 0.0)
        if held > 0 and redeem_share > 0:
            redeemed_eur += bank.redeem(p, held * redeem_share)
    bank.check_conservation()

    carbon_kg = carbon.participant_avoided_kg(result.bought_kwh, carbon_g)
    community_kg = carbon.community_import_kg(
        baseline.metered_kwh, carbon_g
    ) - carbon.community_import_kg(result.metered_kwh, carbon_g)
    grid = grid_check(scenario, result, baseline, limits, asset_kw)

    if ledger is not None:
        ledger.append_many(_ledger_entries(scenario, result, bank, names))
        refunded = np.flatnonzero(st.make_whole_eur > 0)
        if len(refunded):
            ledger.append_many(
                ("make_whole", {"participant": names[p], "eur": float(st.make_whole_eur[p])})
                for p in refunded
            )

    saving = st0.bill_eur - st.bill_eur
    trades = result.trades
    volume = float(trades["energy_kwh"].sum()) if trades else 0.0
    window = slice(scenario.start_step, scenario.end_step)
    pv_kwh = float(scenario.pv_by_bus_kw(window).sum() * scenario.dt_h)
    load_kwh = float((scenario.base_load_kw[window].sum() + asset_kw.sum()) * scenario.dt_h)
    summary = {
        "participants": n_p,
        "intervals": int(scenario.n_steps),
        "pricing_rule": cfg.rule,
        "orders": int(result.n_orders),
        "trades": int(len(trades.get("energy_kwh", []))),
        "traded_kwh": volume,
        "avg_buyer_price_eur_per_kwh": _weighted(trades, "buyer_price_eur_per_kwh"),
        "avg_seller_price_eur_per_kwh": _weighted(trades, "seller_price_eur_per_kwh"),
        "buyer_payments_eur": float(result.paid_eur.sum()),
        "seller_receipts_eur": float(result.received_eur.sum()),
        "operator_surplus_eur": float(result.operator_surplus_eur),
        "community_self_consumption": _self_consumption(result, pv_kwh),
        "community_self_consumption_no_market": _self_consumption(baseline, pv_kwh),
        "community_self_sufficiency": _self_sufficiency(result, load_kwh),
        "community_self_sufficiency_no_market": _self_sufficiency(baseline, load_kwh),
        "community_self_sufficiency_end_state_adjusted": _self_sufficiency(
            result, load_kwh, adjust_end_state=True
        ),
        "community_self_sufficiency_end_state_adjusted_no_market": _self_sufficiency(
            baseline, load_kwh, adjust_end_state=True
        ),
        "community_load_kwh": load_kwh,
        "community_asset_load_kwh": float(asset_kw.sum() * scenario.dt_h),
        "community_pv_kwh": pv_kwh,
        # self-sufficiency moves with what batteries hold at the end: report it next to it
        "battery_energy_start_kwh": float(result.participants.energy_init_kwh.sum()),
        "battery_energy_end_kwh": float(result.energy_end_kwh.sum()),
        "battery_energy_end_no_market_kwh": float(baseline.energy_end_kwh.sum()),
        "bill_total_eur": float(st.bill_eur.sum()),
        "bill_total_no_market_eur": float(st0.bill_eur.sum()),
        "participants_better_off": int(np.sum(saving > 1e-9)),
        "participants_worse_off": int(np.sum(saving < -1e-9)),
        "worst_saving_eur": float(saving.min()),
        "best_saving_eur": float(saving.max()),
        "imbalance_eur": float(st.imbalance_eur.sum()),
        "network_fees_eur": float(st.network_fee_eur.sum()),
        "make_whole_eur": float(st.make_whole_eur.sum()),
        "participants_made_whole": int(np.sum(st.make_whole_eur > 0)),
        "credits_minted": bank.minted,
        "credits_held": bank.held,
        "credits_redeemed": bank.redeemed,
        "credits_redeemed_eur": redeemed_eur,
        "community_pool_credits": bank.balances.get(COMMUNITY, 0.0),
        "carbon_method": carbon.METHOD,
        "carbon_avoided_participants_kg": float(carbon_kg.sum()),
        "carbon_avoided_community_kg": community_kg,
        "network_rejections": len(result.rejections),
        "network_rejected_kwh": float(sum(r.energy_kwh for r in result.rejections)),
        "saving_breakdown": saving_breakdown(scenario, result, st, st0),
        "network_fees": network_fee_incidence(scenario, result, st, st0, cfg),
        **grid,
    }
    run = MarketRun(result, baseline, st, st0, bank, summary, names)
    run.summary_arrays = {"carbon_kg": carbon_kg, "saving_eur": saving}
    return run


def _weighted(trades: dict, key: str) -> float:
    if not trades or trades["energy_kwh"].sum() <= 0:
        return float("nan")
    return float(np.average(trades[key], weights=trades["energy_kwh"]))


def _self_consumption(result: P2PResult, pv_kwh: float) -> float:
    """Share of the community's PV energy used inside the community (not exported upstream)."""
    if pv_kwh <= 0:
        return float("nan")
    exported = np.maximum(-result.metered_kwh.sum(1), 0).sum()
    return float(1 - exported / pv_kwh)


def _self_sufficiency(result: P2PResult, load_kwh: float, adjust_end_state: bool = False) -> float:
    """Share of the community's consumption (every asset, batteries' losses aside) met
    locally: 1 - energy imported through the feeder head / consumption.

    ``adjust_end_state`` counts stored energy the batteries end the window without (against
    their start) as imported: a market that drains the batteries looks self-sufficient only
    until they must be refilled."""
    if load_kwh <= 0:
        return float("nan")
    imported = np.maximum(result.metered_kwh.sum(1), 0).sum()
    if adjust_end_state:
        drained = result.participants.energy_init_kwh.sum() - result.energy_end_kwh.sum()
        imported += max(float(drained), 0.0)
    return float(1 - imported / load_kwh)


def saving_breakdown(scenario, result: P2PResult, st: Settlement, st0: Settlement) -> dict:
    """Where the participants' saving comes from (EUR over the window).

    ``retail_spread_kept_eur``: every P2P kWh would otherwise have been exported at the export
    price by the seller and imported at the import price by the buyer, so trading keeps that
    spread inside the community; it is a transfer from the retailer, not a physical gain.
    ``network_fees_eur`` go back out of it. ``physical_and_other_eur`` is the rest (battery
    shifting, less feeder import/export, imbalance charges, make-whole refunds).
    """
    t = result.trades
    total = float((st0.bill_eur - st.bill_eur).sum())
    if not t:
        return {
            "total_eur": total,
            "retail_spread_kept_eur": 0.0,
            "network_fees_eur": 0.0,
            "physical_and_other_eur": total,
        }
    spread = (
        scenario.tariff.import_eur_per_kwh[t["step"]]
        - scenario.tariff.export_eur_per_kwh[t["step"]]
    )
    kept = float((t["energy_kwh"] * spread).sum())
    fees = float(st.network_fee_eur.sum())
    return {
        "total_eur": total,
        "retail_spread_kept_eur": kept,
        "network_fees_eur": fees,
        "physical_and_other_eur": total - kept + fees,
    }


def network_fee_incidence(
    scenario, result: P2PResult, st: Settlement, st0: Settlement, cfg: MarketConfig
) -> dict:
    """Who pays the local network fee on P2P energy: buyers by kind (households with a battery,
    with PV only, with neither), what each group saved, and how much of the fee pot goes back
    as make-whole refunds."""
    parts = result.participants
    pv_bus = np.zeros(scenario.feeder.n_bus, dtype=bool)
    pv_bus[scenario.fleet.pv.bus] = True
    has_pv = pv_bus[parts.bus]
    has_batt = parts.battery_kwh > 0
    saving = st0.bill_eur - st.bill_eur
    fee = st.network_fee_eur
    refund = st.make_whole_eur if st.make_whole_eur is not None else np.zeros_like(fee)
    groups = {
        "battery_owners": has_batt,
        "pv_without_battery": has_pv & ~has_batt,
        "consumers_only": ~has_pv & ~has_batt,
    }
    return {
        "fee_eur_per_kwh": cfg.network_fee_eur_per_kwh,
        "paid_by": "buyers, on every P2P kWh they buy",
        "collected_eur": float(fee.sum()),
        "refunded_make_whole_eur": float(refund.sum()),
        "kept_for_network_eur": float(fee.sum() - refund.sum()),
        "by_group": {
            name: {
                "participants": int(m.sum()),
                "fees_eur": float(fee[m].sum()),
                "bought_kwh": float(result.bought_kwh[:, m].sum()),
                "saving_eur": float(saving[m].sum()),
            }
            for name, m in groups.items()
        },
    }


def grid_check(
    scenario,
    result: P2PResult,
    baseline: P2PResult,
    limits: Limits | None,
    asset_kw: np.ndarray | None = None,
) -> dict:
    """AC power flow of the delivered market and of the no-market run, every interval, on the
    full twin state (inflexible load, PV, batteries and ``asset_kw``: EVs, heat pumps,
    appliances).

    Counts bus-steps outside the voltage band and branch-steps above the loading limit in both,
    and how many the market added (worse than without it at the same bus/branch and step).
    """
    lim = limits or Limits(**scenario.config.limits.model_dump())
    window = slice(scenario.start_step, scenario.end_step)
    pf = scenario.powerflow()
    p0 = scenario.net_inflexible_kw(window)
    if asset_kw is not None:
        p0 = p0 + asset_kw
    q = scenario.base_load_kvar[window]
    bus = result.participants.bus
    out = {}
    res = {}
    for name, r in (("market", result), ("no_market", baseline)):
        p = p0.copy()
        p[:, bus] += r.battery_kwh / scenario.dt_h
        res[name] = pf.solve_batch(p, q)
    for name, r in res.items():
        out[f"voltage_violations_{name}"] = int(
            np.sum((r.vm_pu > lim.voltage_max_pu) | (r.vm_pu < lim.voltage_min_pu))
        )
        out[f"overloads_{name}"] = int(np.sum(r.branch_loading_pct > lim.loading_max_pct))
    m, b = res["market"], res["no_market"]
    tol = 1e-6
    added_v = ((m.vm_pu > lim.voltage_max_pu) & (m.vm_pu > b.vm_pu + tol)) | (
        (m.vm_pu < lim.voltage_min_pu) & (m.vm_pu < b.vm_pu - tol)
    )
    added_l = (m.branch_loading_pct > lim.loading_max_pct) & (
        m.branch_loading_pct > b.branch_loading_pct + 1e-4
    )
    out["violations_added_by_market"] = int(added_v.sum() + added_l.sum())
    # how much worse: the largest voltage / loading change at those bus- and branch-steps
    dv = np.abs(m.vm_pu - b.vm_pu)
    dl = m.branch_loading_pct - b.branch_loading_pct
    out["worst_added_voltage_change_pu"] = float(dv[added_v].max()) if added_v.any() else 0.0
    out["worst_added_loading_change_pct"] = float(dl[added_l].max()) if added_l.any() else 0.0
    out["min_voltage_pu"] = float(m.vm_pu.min())
    out["max_voltage_pu"] = float(m.vm_pu.max())
    out["max_loading_pct"] = float(m.branch_loading_pct.max())
    return out


def _ledger_entries(scenario, result: P2PResult, bank: CreditBank, names: list[str]):
    """Trades, the meter readings that settled them, and every credit movement."""
    t = result.trades
    stamp = scenario.index
    for k in range(len(t.get("energy_kwh", []))):
        yield (
            "trade",
            {
                "interval": str(stamp[t["step"][k]]),
                "buyer": names[t["buyer"][k]],
                "seller": names[t["seller"][k]],
                "energy_kwh": float(t["energy_kwh"][k]),
                "buyer_price_eur_per_kwh": float(t["buyer_price_eur_per_kwh"][k]),
                "seller_price_eur_per_kwh": float(t["seller_price_eur_per_kwh"][k]),
            },
        )
    traded = (result.bought_kwh > 0) | (result.sold_kwh > 0)
    metered, scheduled = result.metered_kwh, result.scheduled_kwh
    for ti, pi in zip(*np.nonzero(traded), strict=True):
        yield (
            "meter",
            {
                "interval": str(stamp[result.steps[ti]]),
                "participant": names[pi],
                "metered_kwh": float(metered[ti, pi]),
                "scheduled_kwh": float(scheduled[ti, pi]),
            },
        )

    def who(account: int) -> str:
        return "community" if account == COMMUNITY else names[account]

    for kind, data in bank.journal:
        entry = dict(data)
        for role in ("to", "from"):
            if role in entry:
                entry[role] = who(entry[role])
        if entry.get("step") is not None:
            entry["interval"] = str(stamp[entry.pop("step")])
        entry.pop("step", None)
        yield kind, entry
