"""The twin's network physics: AC power flow and (later) state estimation."""
