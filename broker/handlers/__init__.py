"""Request handlers, one module per Kafka API.

Each module declares ``API_KEY``, ``MIN_VERSION``, ``MAX_VERSION`` (exactly what the
broker serves and advertises in ApiVersions) and ``async def handle(ctx, request)``.
Modules are discovered here rather than listed, so adding an API is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["load_handlers"]


def load_handlers() -> dict[int, ModuleType]:
    table: dict[int, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        key = getattr(module, "API_KEY", None)
        if key is None:
            continue  # a helper module shared by handlers
        if int(key) in table:
            raise RuntimeError(f"two handlers for API key {int(key)}: {table[int(key)].__name__}, {module.__name__}")
        table[int(key)] = module
    return table
