"""Demand response: customer profiles, programs, event planning, customer response in the
twin, measurement & verification and OpenADR.

Interface to the dispatch optimizer (MPC): the agent does not reach into the MPC. It exposes
its planned and callable flexibility as ``gridsync.dr.resource.FlexibleResource`` blocks
(kW of reduction per interval, with a cost in EUR/kWh and the expected rebound), and its
committed events as a forecast adjustment (``DRAgent.forecast_adjustment_kw``) that an MPC
adds to its net-load forecast.
"""
