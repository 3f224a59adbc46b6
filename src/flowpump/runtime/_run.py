"""Entry points: blocking ``run`` (also inside a running loop), ``arun`` and background ``start``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING

from ._executor import Progress, execute
from ._report import RunReport

if TYPE_CHECKING:
    from .._graph import Pipeline


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_blocking(pipeline: Pipeline, *, fuse: bool) -> RunReport:
    """Run to completion. Inside a running loop (a notebook cell), run on a helper thread."""
    if not _in_running_loop():
        return asyncio.run(execute(pipeline, fuse=fuse))
    handle = start(pipeline, fuse=fuse, thread=True)
    return handle.result()


async def run_async(pipeline: Pipeline, *, fuse: bool) -> RunReport:
    """Run to completion in the current loop."""
    return await execute(pipeline, fuse=fuse)


class RunHandle:
    """A pipeline running in the background.

    ``stop()`` asks the sources to stop (in-flight events still reach the sinks);
    ``await wait()`` or ``result()`` returns the report.
    """

    def __init__(self, pipeline: Pipeline, *, fuse: bool, thread: bool) -> None:
        self.pipeline = pipeline
        self.progress = Progress()
        self._loop: asyncio.AbstractEventLoop
        self._stop: asyncio.Event
        self._future: concurrent.futures.Future[RunReport] | asyncio.Task[RunReport]
        if thread:
            ready = threading.Event()
            future: concurrent.futures.Future[RunReport] = concurrent.futures.Future()

            async def main() -> RunReport:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                ready.set()
                return await execute(pipeline, fuse=fuse, stop=self._stop, progress=self.progress)

            def target() -> None:
                try:
                    future.set_result(asyncio.run(main()))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting side
                    future.set_exception(exc)
                finally:
                    ready.set()

            self._future = future
            self._thread: threading.Thread | None = threading.Thread(target=target, name="flowpump-run", daemon=True)
            self._thread.start()
            ready.wait()
        else:
            self._thread = None
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._future = self._loop.create_task(execute(pipeline, fuse=fuse, stop=self._stop, progress=self.progress))

    def snapshot(self) -> RunReport | None:
        """The counts so far, for live displays (None until the run has started)."""
        return self.progress.snapshot()

    @property
    def done(self) -> bool:
        """True once the run has ended (normally or not)."""
        return self._future.done()

    def stop(self) -> None:
        """Ask the sources to stop; safe to call from any thread, more than once."""
        if self._thread is None:
            self._stop.set()
        elif not self._future.done():
            self._loop.call_soon_threadsafe(self._stop.set)

    async def wait(self) -> RunReport:
        """Wait for the end of the run and return its report (raises what the run raised)."""
        if isinstance(self._future, asyncio.Task):
            return await asyncio.shield(self._future)
        return await asyncio.wrap_future(self._future)

    def result(self, timeout: float | None = None) -> RunReport:
        """Block until the run ends (only for runs on their own thread)."""
        if isinstance(self._future, asyncio.Task):
            msg = "result() would block the event loop this run is on; use `await handle.wait()`"
            raise RuntimeError(msg)
        return self._future.result(timeout)


def start(pipeline: Pipeline, *, fuse: bool, thread: bool | None = None) -> RunHandle:
    """Start in the current loop if there is one, else on a background thread."""
    return RunHandle(pipeline, fuse=fuse, thread=not _in_running_loop() if thread is None else thread)
