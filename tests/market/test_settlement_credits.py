"""Settlement arithmetic by hand, credit conservation, carbon attribution."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gridsync.market import carbon
from gridsync.market.agents import MarketConfig
from gridsync.market.credits import COMMUNITY, CreditBank, green_delivered_kwh
from gridsync.market.p2p import P2PResult
from gridsync.market.settlement import settle


def _result(actual, bought, sold, paid, received):
    z = np.zeros_like(actual)
    n_p = actual.shape[1]
    return P2PResult(
        steps=np.arange(actual.shape[0]),
        participants=None,
        forecast_kwh=actual,
        actual_kwh=actual,
        battery_kwh=z,
        bought_kwh=bought,
        sold_kwh=sold,
        paid_eur=paid,
        received_eur=received,
        battery_bought_kwh=z,
        clearing_price_eur_per_kwh=np.full(actual.shape[0], 0.2),
        trades={},
        stored_cost_start_eur=np.zeros(n_p),
        stored_cost_end_eur=np.zeros(n_p),
    )


def test_settlement_by_hand():
    # import 0.30, export 0.10; shortfall at 0.30 * 1.25, unused purchase at 0.10 * 0.5
    tariff = SimpleNamespace(
        import_eur_per_kwh=np.array([0.30]), export_eur_per_kwh=np.array([0.10])
    )
    scenario = SimpleNamespace(tariff=tariff)
    cfg = MarketConfig(
        imbalance_buy_markup=0.25, imbalance_sell_markdown=0.5, network_fee_eur_per_kwh=0.05
    )
    actual = np.array([[-1.5, 1.0, 3.0, -3.0]])  # metered kWh, + = consumption
    bought = np.array([[0.0, 2.0, 0.0, 0.0]])
    sold = np.array([[2.0, 0.0, 0.0, 1.0]])
    paid = bought * 0.2
    received = sold * 0.2
    st = settle(_result(actual, bought, sold, paid, received), scenario, cfg)
    # P0 sold 2, delivered 1.5: 0.5 short at 0.375      -> -0.40 + 0.1875
    # P1 bought 2 (+0.05 fee each), used 1: 1 sold back at 0.05 -> 0.40 + 0.10 - 0.05
    # P2 no trade, imports 3 at 0.30                    ->  0.90
    # P3 sold 1 of its 3 surplus, exports 2 at 0.10     -> -0.20 - 0.20
    np.testing.assert_allclose(st.bill_eur, [-0.2125, 0.45, 0.90, -0.40])
    np.testing.assert_allclose(st.shortfall_kwh, [0.5, 0, 0, 0])
    np.testing.assert_allclose(st.spill_kwh, [0, 1.0, 0, 0])
    np.testing.assert_allclose(st.retail_export_eur, [0, 0, 0, 0.2])


def test_credit_bank_conserves_and_refuses_overdrafts():
    bank = CreditBank(credit_value_eur=0.01)
    bank.mint(0, 5.0, "green_delivered")
    bank.mint(1, 2.5, "green_shift")
    bank.transfer(0, 1, 1.5)
    bank.transfer(1, COMMUNITY, 1.0)
    assert bank.redeem(1, 2.0) == pytest.approx(0.02)
    assert bank.balances == {0: 3.5, 1: 1.0, COMMUNITY: 1.0}
    assert bank.minted == pytest.approx(bank.held + bank.redeemed)
    bank.check_conservation()
    with pytest.raises(ValueError, match="account 1 holds 1"):
        bank.transfer(1, 0, 2.0)
    with pytest.raises(ValueError, match="credits = -1"):
        bank.mint(0, -1.0, "x")
    with pytest.raises(ValueError, match="cannot redeem"):
        bank.redeem(COMMUNITY, 5.0)
    assert [k for k, _ in bank.journal] == [
        "credit_mint",
        "credit_mint",
        "credit_transfer",
        "credit_transfer",
        "credit_redeem",
    ]


def test_random_credit_operations_conserve():
    rng = np.random.default_rng(3)
    bank = CreditBank(credit_value_eur=0.02)
    for _ in range(300):
        a, b = (int(x) for x in rng.integers(0, 6, 2))
        op = rng.integers(0, 3)
        have = bank.balances.get(a, 0.0)
        if op == 0:
            bank.mint(a, float(rng.uniform(0.1, 3)), "green_delivered")
        elif op == 1 and have > 0 and a != b:
            bank.transfer(a, b, have * float(rng.uniform(0.1, 1)))
        elif op == 2 and have > 0:
            bank.redeem(a, have * float(rng.uniform(0.1, 1)))
    bank.check_conservation()
    assert min(bank.balances.values()) >= -1e-12


def test_green_delivery_is_capped_by_the_meter():
    sold = np.array([[2.0, 1.0, 0.0]])
    metered = np.array([[-1.5, -3.0, -2.0]])
    np.testing.assert_allclose(green_delivered_kwh(sold, metered), [[1.5, 1.0, 0.0]])


def test_carbon_attribution_by_hand():
    bought = np.array([[1.0, 0.0], [2.0, 0.5]])
    ci = np.array([400.0, 200.0])
    np.testing.assert_allclose(carbon.participant_avoided_kg(bought, ci), [0.8, 0.1])
    metered = np.array([[1.0, -3.0], [2.0, 1.0]])  # interval 0 nets to export: no imports
    assert carbon.community_import_kg(metered, ci) == pytest.approx(0.6)
