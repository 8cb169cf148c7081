"""Resilience: reliability indices (analytical and Monte Carlo), outage risk, FLISR, islanding."""
