"""Message bus: one asynchronous contract (:class:`Bus`), in-process and NATS JetStream."""

from gridsync.bus.base import TOPICS, Bus, BusError, Message, Subscription
from gridsync.bus.inprocess import InProcessBus

__all__ = ["TOPICS", "Bus", "BusError", "InProcessBus", "Message", "Subscription", "make_bus"]


def make_bus(url: str | None = None, **kwargs) -> Bus:
    """``None`` or ``"inprocess"`` -> :class:`InProcessBus`; ``nats://host:port`` -> JetStream."""
    if url in (None, "", "inprocess"):
        return InProcessBus(**kwargs)
    if url.startswith(("nats://", "tls://")):
        from gridsync.bus.nats import NatsBus

        return NatsBus(url, **kwargs)
    msg = f"bus url {url!r}: expected 'inprocess' or 'nats://host:port'"
    raise BusError(msg)
