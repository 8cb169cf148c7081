"""End to end on the real feeder: individual rationality, budget balance, ledger, privacy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gridsync.ledger import JsonlLedger, LedgerSigner
from gridsync.market.agents import MarketConfig
from gridsync.market.run import run_market


@pytest.fixture(scope="module")
def signer():
    return LedgerSigner.generate()


@pytest.fixture(scope="module")
def market_run(scenario_1day, signer, tmp_path_factory):
    path = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    ledger = JsonlLedger(path, signer)
    # default: the twin's EV, heat-pump and appliance load is computed by run_market itself
    run = run_market(scenario_1day, MarketConfig(), ledger=ledger, secret=b"test-secret")
    return run, ledger


@pytest.fixture(scope="module")
def asset_kw(scenario_1day):
    from gridsync.market.twin_state import asset_load_by_bus_kw

    return asset_load_by_bus_kw(scenario_1day)


def test_asset_load_is_the_twins_ev_heat_pump_and_appliance_load(scenario_1day, asset_kw):
    from gridsync.dispatch.rules import UncontrolledController
    from gridsync.sim.simulator import simulate

    # batteries do not change what EVs, heat pumps and appliances draw under these rules
    sim = simulate(scenario_1day, UncontrolledController())
    np.testing.assert_allclose(
        asset_kw.sum(axis=1), sim.ev_kw + sim.thermal_kw + sim.deferrable_kw, rtol=1e-9
    )
    assert asset_kw.sum() > 0
    assert not asset_kw[
        :, np.setdiff1d(np.arange(asset_kw.shape[1]), scenario_1day.feeder.customer_buses)
    ].any()


@pytest.mark.parametrize("rule", ["uniform", "pay_as_bid"])
def test_nobody_is_worse_off_with_accurate_forecasts(scenario_1day, asset_kw, rule):
    window = slice(scenario_1day.start_step, scenario_1day.end_step)
    run = run_market(
        scenario_1day,
        MarketConfig(rule=rule),
        forecast_net_kw=scenario_1day.net_inflexible_kw(window) + asset_kw,
        asset_kw=asset_kw,
    )
    saving = run.summary_arrays["saving_eur"]
    assert run.summary["traded_kwh"] > 100
    assert saving.min() >= -1e-9, f"participant {saving.argmin()} loses {saving.min():.4f} EUR"
    assert saving.sum() > 0
    s = run.summary
    if rule == "uniform":
        assert s["buyer_payments_eur"] == pytest.approx(s["seller_receipts_eur"])
    else:
        assert s["operator_surplus_eur"] == pytest.approx(
            s["buyer_payments_eur"] - s["seller_receipts_eur"]
        )
        assert s["operator_surplus_eur"] > 0


def test_day_ahead_forecast_from_the_forecaster_interface(scenario_1day):
    from gridsync.market.p2p import day_ahead_forecast_kw
    from gridsync.sim.forecasts import NaiveForecaster, PerfectForecaster

    window = slice(scenario_1day.start_step, scenario_1day.end_step)
    truth = scenario_1day.net_inflexible_kw(window)
    np.testing.assert_allclose(day_ahead_forecast_kw(scenario_1day, PerfectForecaster()), truth)
    naive = day_ahead_forecast_kw(scenario_1day, NaiveForecaster())
    day = scenario_1day.steps_per_day
    s0 = scenario_1day.start_step
    # seasonal naive = yesterday, the issue step included (it is not metered before it ends)
    yesterday = scenario_1day.net_inflexible_kw(slice(s0 - day, s0 - day + len(truth)))
    np.testing.assert_allclose(naive, yesterday)


def test_default_forecast_run_is_balanced_and_rational_after_make_whole(market_run):
    run, _ = market_run
    s = run.summary
    # Budget balance of the uniform-price auction: every euro paid is received.
    assert s["buyer_payments_eur"] == pytest.approx(s["seller_receipts_eur"], abs=1e-9)
    assert s["operator_surplus_eur"] == pytest.approx(0.0, abs=1e-9)
    # Persistence forecasts err and imbalance can cost a participant; the make-whole refund,
    # paid from the network fees, leaves nobody worse off than without the market.
    saving = run.summary_arrays["saving_eur"]
    assert s["participants_better_off"] > 0.8 * s["participants"]
    assert s["participants_worse_off"] == 0
    assert saving.min() >= -1e-9
    assert 0 <= s["make_whole_eur"] <= s["network_fees_eur"] + 1e-9
    assert s["bill_total_eur"] < s["bill_total_no_market_eur"]
    assert 0 < s["community_self_consumption"] <= 1
    assert s["violations_added_by_market"] == 0


def test_community_kpis_count_every_asset(scenario_1day, market_run, asset_kw):
    run, _ = market_run
    s, r, dt = run.summary, run.result, scenario_1day.dt_h
    window = slice(scenario_1day.start_step, scenario_1day.end_step)
    load = (scenario_1day.base_load_kw[window].sum() + asset_kw.sum()) * dt
    pv = scenario_1day.pv_by_bus_kw(window).sum() * dt
    assert s["community_load_kwh"] == pytest.approx(load)
    assert s["community_asset_load_kwh"] == pytest.approx(asset_kw.sum() * dt)
    # feeder-head exchange from the meters (every participant, every asset): import and export
    head = r.metered_kwh.sum(axis=1)
    assert s["community_self_sufficiency"] == pytest.approx(1 - head.clip(0).sum() / load)
    assert s["community_self_consumption"] == pytest.approx(1 - (-head).clip(0).sum() / pv)
    drained = max(s["battery_energy_start_kwh"] - s["battery_energy_end_kwh"], 0.0)
    assert s["community_self_sufficiency_end_state_adjusted"] == pytest.approx(
        1 - (head.clip(0).sum() + drained) / load
    )
    # Saving decomposition adds up, and the network fee is paid by buyers only.
    b = s["saving_breakdown"]
    assert b["total_eur"] == pytest.approx(s["bill_total_no_market_eur"] - s["bill_total_eur"])
    assert b["total_eur"] == pytest.approx(
        b["retail_spread_kept_eur"] - b["network_fees_eur"] + b["physical_and_other_eur"]
    )
    fees = s["network_fees"]
    assert fees["collected_eur"] == pytest.approx(0.05 * r.bought_kwh.sum())
    groups = fees["by_group"].values()
    assert sum(g["participants"] for g in groups) == s["participants"]
    assert sum(g["fees_eur"] for g in groups) == pytest.approx(fees["collected_eur"])
    assert fees["kept_for_network_eur"] == pytest.approx(
        fees["collected_eur"] - s["make_whole_eur"]
    )


def test_grid_check_solves_the_full_twin_state(scenario_1day, market_run, asset_kw):
    from gridsync.market.network import Limits

    run, _ = market_run
    window = slice(scenario_1day.start_step, scenario_1day.end_step)
    p = scenario_1day.net_inflexible_kw(window) + asset_kw
    p[:, run.result.participants.bus] += run.result.battery_kwh / scenario_1day.dt_h
    res = scenario_1day.powerflow().solve_batch(p, scenario_1day.base_load_kvar[window])
    lim = Limits(**scenario_1day.config.limits.model_dump())
    assert run.summary["min_voltage_pu"] == pytest.approx(float(res.vm_pu.min()))
    assert run.summary["max_loading_pct"] == pytest.approx(float(res.branch_loading_pct.max()))
    bad = (res.vm_pu < lim.voltage_min_pu) | (res.vm_pu > lim.voltage_max_pu)
    assert run.summary["voltage_violations_market"] == int(bad.sum())


def test_credits_are_conserved_and_backed_by_meters(market_run):
    run, _ = market_run
    s = run.summary
    assert s["credits_minted"] > 0
    assert s["credits_minted"] == pytest.approx(s["credits_held"] + s["credits_redeemed"])
    green = np.minimum(run.result.sold_kwh, np.maximum(-run.result.metered_kwh, 0)).sum()
    minted_green = sum(
        d["credits"]
        for k, d in run.bank.journal
        if k == "credit_mint" and d["reason"] == "green_delivered"
    )
    assert minted_green == pytest.approx(green)


def test_ledger_holds_every_trade_meter_and_credit_and_verifies(market_run, signer):
    run, ledger = market_run
    report = ledger.verify(signer.public_key)
    assert report.ok, report.issues[:3]
    kinds = [r["kind"] for r in ledger.records()]
    assert kinds.count("trade") == run.summary["trades"]
    assert kinds.count("meter") == int(
        ((run.result.bought_kwh > 0) | (run.result.sold_kwh > 0)).sum()
    )
    assert kinds.count("credit_mint") + kinds.count("credit_transfer") + kinds.count(
        "credit_redeem"
    ) == len(run.bank.journal)
    # Privacy: no participant numbers in the ledger, only keyed pseudonyms.
    trade = next(r for r in ledger.records() if r["kind"] == "trade")["data"]
    assert trade["buyer"] in run.pseudonyms and trade["seller"] in run.pseudonyms
    text = ledger.path.read_text()
    assert '"participant":' not in text.replace('"participant":"', "")


def test_statement_shows_only_own_trades(market_run):
    run, _ = market_run
    t = run.result.trades
    p = int(np.bincount(t["buyer"]).argmax())
    st = run.statement(p)
    assert len(st["trades"]) == int(((t["buyer"] == p) | (t["seller"] == p)).sum())
    assert "buyer" not in json.dumps(st["trades"]) and "seller" not in json.dumps(st["trades"])
    assert st["saving_eur"] == pytest.approx(st["bill_without_market_eur"] - st["bill_eur"])
    with pytest.raises(ValueError, match="participant 999"):
        run.statement(999)


def test_statements_are_sealed_per_participant(market_run):
    from gridsync.market.run import open_statement, seal_statement, statement_key

    run, _ = market_run
    a, b = run.pseudonyms[0], run.pseudonyms[1]
    token = seal_statement(run.statement(0), statement_key(b"test-secret", a))
    assert a.encode() not in token and b"bill_eur" not in token
    assert open_statement(token, statement_key(b"test-secret", a))["pseudonym"] == a
    with pytest.raises(ValueError, match="wrong key"):
        open_statement(token, statement_key(b"test-secret", b))


def test_cli_market_run_writes_a_verifiable_ledger(scenario_1day, tmp_path, monkeypatch):
    import gridsync.sim.builder as builder
    from gridsync.cli.main import cli

    monkeypatch.setattr(builder, "load_scenario", lambda *a, **k: scenario_1day)
    led, keys, out = tmp_path / "l.jsonl", tmp_path / "keys", tmp_path / "m.json"
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "market",
            "run",
            "--days",
            "1",
            "--ledger",
            str(led),
            "--key-dir",
            str(keys),
            "--json",
            str(out),
            "--statements-dir",
            str(tmp_path / "st"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(out.read_text())
    assert summary["traded_kwh"] > 0 and summary["ledger"]["records"] > 1
    ok = runner.invoke(
        cli, ["ledger", "verify", str(led), "--public-key", str(keys / "ledger_ed25519.pub.pem")]
    )
    assert ok.exit_code == 0, ok.output
    keyfile = keys / "participant_keys.json"
    assert keyfile.stat().st_mode & 0o777 == 0o600
    name, key = next(iter(json.loads(keyfile.read_text()).items()))
    shown = runner.invoke(
        cli, ["market", "statement", str(tmp_path / "st" / f"{name}.json.enc"), "--key", key]
    )
    assert shown.exit_code == 0 and json.loads(shown.output)["pseudonym"] == name
