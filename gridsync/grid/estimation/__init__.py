"""Grid state estimation: measurement model, WLS estimator with bad-data processing, and the
twin's synthetic SCADA/PMU/smart-meter telemetry."""

from gridsync.grid.estimation.measurements import (
    IIM,
    IRE,
    VA,
    VM,
    MeasurementFunction,
    MeasurementSet,
    P,
    Q,
)
from gridsync.grid.estimation.twin import (
    MeasurementConfig,
    MeasurementPlan,
    Truth,
    truth_from_loads,
)
from gridsync.grid.estimation.wls import (
    EstimateResult,
    EstimationNotConverged,
    UnobservableError,
    check_observability,
    estimate,
)

__all__ = [
    "IIM",
    "IRE",
    "P",
    "Q",
    "VA",
    "VM",
    "EstimateResult",
    "EstimationNotConverged",
    "MeasurementConfig",
    "MeasurementFunction",
    "MeasurementPlan",
    "MeasurementSet",
    "Truth",
    "UnobservableError",
    "check_observability",
    "estimate",
    "truth_from_loads",
]
