"""Energy market: peer-to-peer double auction, settlement, credits, carbon and VPP bidding."""
