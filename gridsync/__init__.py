"""GridSync: load balancing and demand response for distribution grids around an AC digital twin."""

__version__ = "0.1.0"
