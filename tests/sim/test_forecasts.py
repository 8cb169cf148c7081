"""Reference forecasters never look past what they are allowed to see."""

import numpy as np

from gridsync.sim.forecasts import NaiveForecaster, PerfectForecaster


def test_naive_uses_only_the_past(scenario_1day):
    s = scenario_1day
    step, h = s.start_step + 10, s.steps_per_day + 5
    f = NaiveForecaster().forecast(s, step, h)
    assert np.array_equal(f.base_load_kw[0], s.base_load_kw[step])
    day = s.steps_per_day
    for k in range(1, h):
        src = step + k - day * int(np.ceil(k / day))
        assert src <= step
        assert np.array_equal(f.base_load_kw[k], s.base_load_kw[src])


def test_perfect_is_truth_and_clips_at_the_end(scenario_1day):
    s = scenario_1day
    f = PerfectForecaster().forecast(s, len(s.index) - 3, 10)
    assert f.horizon == 3
    assert np.array_equal(f.pv_per_kwp, s.pv_per_kwp[-3:])
