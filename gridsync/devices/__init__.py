"""Field devices over real protocols: OCPP for EV chargers, Modbus TCP/SunSpec for inverters.

``ocpp_csms`` / ``modbus_client`` are GridSync's side (the charging-station management system
and the SunSpec poller/writer); ``ocpp_sim`` / ``modbus_sim`` are hardware-in-the-loop stand-ins
for real chargers and inverters, driven by the twin; ``loop`` wires twin, devices, protocols
and the controller together on loopback.
"""
