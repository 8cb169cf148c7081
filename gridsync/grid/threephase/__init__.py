"""Three-phase unbalanced LV/MV power flow: network data, OpenDSS-file reader, solver, KPIs."""
