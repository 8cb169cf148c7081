"""SSE frames are valid JSON for browsers; slow subscribers drop the oldest frames."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from gridsync.web.hub import QUEUE_LIMIT, EventHub


def test_frame_is_browser_json():
    text = EventHub.frame(
        "state", {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.int64(3)}
    )
    assert text.startswith("event: state\ndata: ") and text.endswith("\n\n")
    assert json.loads(text.split("data: ", 1)[1]) == {"a": None, "b": [1.5, None], "c": 3}


def test_slow_subscriber_keeps_the_newest_frames():
    async def run():
        hub = EventHub()
        hub.bind(asyncio.get_running_loop())
        q = hub.subscribe()
        for i in range(QUEUE_LIMIT + 5):
            hub.publish("state", {"i": i})
        got = [json.loads((await q.get()).split("data: ")[1])["i"] for _ in range(q.qsize())]
        hub.unsubscribe(q)
        hub.publish("state", {"i": -1})
        return got, q.qsize(), hub.subscribers

    got, left, subs = asyncio.run(run())
    assert got == list(range(5, QUEUE_LIMIT + 5)) and left == 0 and subs == 0
