"""Receiving calls from Google's products: Pub/Sub push deliveries (``pubsub``), the headers Cloud
Tasks and Cloud Scheduler add (``products``), and helpers that verify the caller's token first, for
Starlette / FastAPI (``asgi``) and Flask (``flask``). The token checks themselves are
``Verifier.google_caller`` (gcptoken.verify.callers)."""
