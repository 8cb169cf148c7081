"""The digital twin: materialised scenarios, the step simulator, KPIs and reports."""
