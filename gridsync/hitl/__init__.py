"""Human in the loop: approval requests with plain-language justifications, fail-safe
timeouts and operator overrides. Pure logic (no web); ``gridsync.web`` is the console on top."""
