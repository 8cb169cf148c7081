"""Dispatch: rule-based baselines and the model-predictive optimizer."""
