"""DR config validation, customer book consistency with the scenario, response law."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.dr.config import DRConfigError, load_dr_config, parse_dr_config
from gridsync.dr.customers import assign_to_customers, build_customer_book, segment_customers
from gridsync.dr.response import CustomerTraits, shed_fraction


def test_bundled_config_loads():
    cfg = load_dr_config()
    kinds = {p.kind for p in cfg.programs}
    assert {
        "critical_peak_pricing",
        "peak_time_rebate",
        "direct_load_control",
        "emergency",
    } <= kinds
    assert {"real_time_pricing", "time_of_use"} <= kinds


def test_bad_config_names_field_and_value():
    data = {
        "programs": [
            {
                "name": "x",
                "kind": "peak_time_rebate",
                "enrolment_share": 1.7,
                "end_uses": ["ev"],
                "rebate_levels_eur_per_kwh": [0.5],
            }
        ]
    }
    with pytest.raises(DRConfigError, match=r"programs\.0\.enrolment_share.*1\.7"):
        parse_dr_config(data)
    data["programs"][0]["enrolment_share"] = 0.5
    data["programs"][0]["end_uses"] = ["jacuzzi"]
    with pytest.raises(DRConfigError, match="end_uses"):
        parse_dr_config(data)


def test_rebate_program_needs_levels():
    data = {
        "programs": [
            {"name": "x", "kind": "peak_time_rebate", "enrolment_share": 0.5, "end_uses": ["ev"]}
        ]
    }
    with pytest.raises(DRConfigError, match="rebate_levels_eur_per_kwh"):
        parse_dr_config(data)


def test_customer_loads_sum_to_scenario_bus_loads(scenario_1day):
    book = build_customer_book(scenario_1day, load_dr_config())
    n_bus = scenario_1day.feeder.n_bus
    per_bus = np.zeros((len(scenario_1day.index), n_bus))
    np.add.at(per_bus.T, book.bus, book.base_kw.T)
    np.testing.assert_allclose(per_bus, scenario_1day.base_load_kw, rtol=1e-9, atol=1e-9)
    fleet = scenario_1day.fleet
    # Every asset belongs to a customer on its own bus; rated kW adds up per end use.
    assert np.array_equal(book.bus[book.ev_customer], fleet.ev.bus)
    assert np.array_equal(book.bus[book.thermal_customer], fleet.thermal.bus)
    assert book.device_kw[:, 0].sum() == pytest.approx(fleet.ev.max_power_kw.sum())
    assert book.device_kw[:, 2:4].sum() == pytest.approx(fleet.deferrable.power_kw.sum())


def test_assignment_stays_on_bus():
    rng = np.random.default_rng(0)
    cust_bus = np.array([5, 3, 5, 9])
    asset_bus = np.array([5, 5, 3, 9, 5] * 20)
    c = assign_to_customers(asset_bus, cust_bus, rng)
    assert np.array_equal(cust_bus[c], asset_bus)
    assert set(c[asset_bus == 5]) == {0, 2}
    with pytest.raises(ValueError, match="no customer"):
        assign_to_customers(np.array([4]), cust_bus, rng)


def test_segmentation_separates_evening_from_daytime_shapes():
    hours = np.arange(24)
    evening = np.exp(-0.5 * ((hours - 19) / 2) ** 2) + 0.2
    day = np.exp(-0.5 * ((hours - 12) / 2) ** 2) + 0.2
    rng = np.random.default_rng(1)
    shapes = np.stack(
        [evening * s for s in rng.uniform(0.5, 3, 20)] + [day * s for s in rng.uniform(0.5, 3, 20)]
    )
    shape = np.stack([shapes, shapes], axis=1)
    labels, _ = segment_customers(shape, np.zeros((40, 5)), 2, seed=0)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1
    assert labels[0] != labels[20]


def test_shed_fraction_law():
    e, o, f = np.array([0.5]), np.array([0.1]), np.array([0.9])
    # Rebate 0.18 on a 0.18 price doubles the effective price: 0.5 * ln 2 * 0.9 * 0.9^2.
    got = shed_fraction("peak_time_rebate", 0.18, 0.18, e, o, f, np.array([2]))
    assert got[0] == pytest.approx(0.5 * np.log(2) * 0.9 * 0.81)
    assert shed_fraction("direct_load_control", 0.0, 0.18, e, o, f, np.array([0]))[
        0
    ] == pytest.approx(0.9)
    higher = shed_fraction(
        "critical_peak_pricing", np.array([0.5, 1.0]), 0.18, e, o, f, np.array([0])
    )
    assert higher[1] > higher[0]
    with pytest.raises(ValueError, match="time_of_use"):
        shed_fraction("time_of_use", 0.0, 0.18, e, o, f, np.array([0]))


def test_true_traits_scatter_around_priors():
    priors = load_dr_config().customers
    t = CustomerTraits.draw(priors, 20000, seed=5)
    assert t.elasticity.mean() == pytest.approx(priors.elasticity.mean, abs=0.02)
    assert t.opt_out.std() > 0
    assert (
        CustomerTraits.draw(priors, 10, seed=5).elasticity.tolist()
        == CustomerTraits.draw(priors, 10, seed=5).elasticity.tolist()
    )
