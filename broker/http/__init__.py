"""The broker's HTTP listener: one home for everything kafkito serves over HTTP.

Theory of operation. ``server.py`` is the trio shell: it accepts connections on the
``http.listeners`` address beside the Kafka listener (in the broker's nursery), speaks
HTTP/1.1 through ``h11`` (sans-IO: bytes in, events out), and hands each request to the
``Router`` of ``routes.py``. Handlers are small async functions, one module per area
(``keys.py``: the per-key index); storage work runs in worker threads behind a capacity
limiter, so a slow HTTP read never stalls the Kafka listener on the trio thread. Every
answer is JSON, errors included (``{"error": CODE, "message": ...}``).

Metrics, the web console and a schema registry will add their routes here.
"""

from .routes import HttpError, HttpResponse, Router
from .server import HttpListener, default_router

__all__ = ["HttpError", "HttpListener", "HttpResponse", "Router", "default_router"]
