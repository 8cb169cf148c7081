"""Safety: anomaly detection on telemetry and the shield every setpoint batch passes."""
