"""What Producer, Consumer and Admin share: a Cluster and a task group for their background
tasks, opened by ``start`` (or ``async with``) and closed by ``close``.

The task group is entered in ``start`` and exited in ``close``, so the object must be
started and closed by the same task (``async with`` does that; the blocking facade runs
both in one portal task). Background tasks never raise into it: they catch, log and
report through the object's state, so a failure never cancels the caller's own work.
"""

from __future__ import annotations

import anyio

__all__ = ["ClientBase"]


class ClientBase:
    cluster = None
    _tg = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self.cluster.start(self._tg)
            await self._on_start()
        except BaseException as exc:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            self._tg = None
            raise

    async def _on_start(self) -> None:
        """The subclass's own start-up, with the cluster connected and the task group open."""

    async def _close_connections(self) -> None:
        await self.cluster.close()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None
