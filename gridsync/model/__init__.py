"""Domain model: feeder network, asset fleets (as arrays), tariffs and their physics.

Knows nothing of storage, the bus or the API.
"""
