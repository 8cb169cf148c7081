"""The twin's network physics: AC power flow, topology processing and state estimation.

``runpp`` is a drop-in for ``pandapower.runpp`` on balanced networks (see ``dropin``).
"""

from gridsync.grid.dropin import runpp

__all__ = ["runpp"]
