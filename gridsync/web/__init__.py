"""The operator console: dashboard, approvals and overrides over FastAPI, Jinja2 and SSE."""
