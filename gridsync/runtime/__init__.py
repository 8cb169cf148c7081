"""The live service: state buffer, supervised agents and the :class:`Runtime` that wires them."""
