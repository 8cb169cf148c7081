"""Reading CityLearn schemas: sizes, units, skipped buildings and named errors."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.citylearn.dataset import CityLearnSchemaError, read_dataset
from tests.citylearn.conftest import battery_spec, write_dataset


def test_reads_buildings_pv_units_and_battery(tmp_path):
    root = write_dataset(tmp_path / "d", hours=48, n_buildings=2,
                         solar_w_per_kw=np.full(48, 500.0))
    ds = read_dataset(root)
    assert ds.names == ["Building_1", "Building_2"]
    assert ds.hours == 48
    # PV kW x W/kW / 1000: 4 kW and 5 kW arrays at 500 W/kW
    assert ds.buildings[0].solar_generation_kwh == pytest.approx(np.full(48, 2.0))
    assert ds.buildings[1].solar_generation_kwh == pytest.approx(np.full(48, 2.5))
    bat = ds.buildings[0].battery
    assert (bat.capacity_kwh, bat.nominal_power_kw, bat.loss_coefficient) == (6.4, 5.0, 0.0)
    assert ds.buildings[0].price_predicted_per_kwh.shape == (48, 3)


def test_include_false_is_skipped_and_time_window_sliced(tmp_path):
    def mutate(schema):
        schema["buildings"]["Building_2"]["include"] = False
        schema["simulation_start_time_step"] = 10
        schema["simulation_end_time_step"] = 33

    root = write_dataset(tmp_path / "d", hours=48, n_buildings=3, mutate=mutate)
    ds = read_dataset(root)
    assert ds.names == ["Building_1", "Building_3"]
    assert ds.hours == 24
    assert ds.buildings[0].hour_of_day[0] == 11  # row 10 has CityLearn hour 11


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s["buildings"]["Building_1"].update(cooling_storage={"type": "x"}),
         "buildings.Building_1.cooling_storage"),
        (lambda s: s["buildings"]["Building_1"].update(
            electrical_storage=battery_spec(depth_of_discharge=0.8)),
         "buildings.Building_1.electrical_storage.attributes.depth_of_discharge"),
        (lambda s: s["buildings"]["Building_1"]["electrical_storage"].update(autosize=True),
         "buildings.Building_1.electrical_storage.autosize"),
        (lambda s: s.update(chargers={}), "chargers"),
        (lambda s: s.update(seconds_per_time_step=900), "seconds_per_time_step"),
        (lambda s: s["buildings"]["Building_1"].update(energy_simulation="missing.csv"),
         "buildings.Building_1.energy_simulation"),
    ],
)
def test_unsupported_fields_are_errors_naming_the_field(tmp_path, mutate, field):
    root = write_dataset(tmp_path / "d", hours=24, n_buildings=1, mutate=mutate)
    with pytest.raises(CityLearnSchemaError, match=field.replace(".", r"\.")):
        read_dataset(root)
