"""The fleet's forecast agent: one model trained once, broadcast to every worker.

Every feeder of a fleet shares the base scenario's load profiles, weather and PV table
(``fleet.replicas``), so one ``LearnedForecaster`` fitted on the base scenario's history
before the window serves them all. It is fitted once by the coordinator, shipped to the
workers (``ray.put``: one copy in the object store, read by every worker) and, within a
worker, each issue (step, horizon) is computed once and handed to every feeder that asks
(issued before the step, from data before it, as ``sim.forecasts`` requires).
"""

from __future__ import annotations

from collections import OrderedDict

from gridsync.forecast.scenario import LearnedForecaster
from gridsync.sim.forecasts import ExogenousForecast, NaiveForecaster
from gridsync.sim.scenario import Scenario

FORECAST_MODELS = ("learned", "naive")


def train_shared_model(base: Scenario, model: str = "learned"):
    """Fit the shared forecast model on the base scenario's history before its window.

    ``learned``: LightGBM load quantiles and the learned PV clear-sky index (a refit never
    falls due inside the window); ``naive``: seasonal-naive, nothing to fit."""
    if model not in FORECAST_MODELS:
        msg = f"forecast model {model!r}: expected one of {', '.join(FORECAST_MODELS)}"
        raise ValueError(msg)
    if model == "naive":
        return NaiveForecaster()
    window_h = base.n_steps * base.dt_h
    fc = LearnedForecaster(refit_every_h=window_h + 48.0)
    fc.forecast(base, base.start_step, 1)  # fits on rows before the window's first step
    return fc


class SharedForecaster:
    """``ExogenousForecaster`` of every feeder in a worker from the one shared model.

    ``base`` is this process's base scenario (same index and series as the one the model was
    fitted on); issues are memoised per (step, horizon), the last ``keep`` of them."""

    def __init__(self, model, base: Scenario, keep: int = 4) -> None:
        self.model, self.base, self.keep = model, base, keep
        self.issues = 0
        self._memo: OrderedDict[tuple[int, int], ExogenousForecast] = OrderedDict()
        if isinstance(model, LearnedForecaster):
            # the model was fitted on an equal base scenario in another process: bind it to
            # this one without refitting (its per-scenario tables come from the same data)
            model._scenario_id = id(base)

    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast:
        key = (int(step), int(horizon))
        fc = self._memo.get(key)
        if fc is None:
            fc = self.model.forecast(self.base, step, horizon)
            self.issues += 1
            self._memo[key] = fc
            while len(self._memo) > self.keep:
                self._memo.popitem(last=False)
        return fc
