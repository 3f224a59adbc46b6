"""Running pipelines inside a real Jupyter kernel, whose event loop is already running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("jupyter_client", reason="the notebook tests need the test extra (jupyter_client)")

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

#: Output message types kept by ``execute``.
OUTPUTS = {"stream", "display_data", "update_display_data", "execute_result", "error"}


class Kernel:
    """A kernel client that keeps the messages of earlier cells (background output) too."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client
        #: iopub messages whose parent is not the cell being executed
        self.background: list[dict[str, Any]] = []

    def execute(self, code: str) -> list[dict[str, Any]]:
        """Run ``code`` in a cell; the outputs it produced while it ran (errors fail the test)."""
        msg_id = self.client.execute(code)
        outputs: list[dict[str, Any]] = []
        while True:
            msg = self.client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                self.background.append(msg)
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind in OUTPUTS:
                outputs.append({"type": kind, **msg["content"]})
        reply = self.client.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", [o for o in outputs if o["type"] == "error"]
        return outputs

    def drain(self, seconds: float) -> None:
        """Collect background messages for ``seconds`` while no cell runs."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.background.append(self.client.get_iopub_msg(timeout=left))
            except Exception:  # noqa: BLE001 - queue.Empty: nothing arrived in time
                return


@pytest.fixture(scope="module")
def kernel(kernel_env: str) -> Iterator[Kernel]:
    km: KernelManager
    km, kc = start_new_kernel(kernel_name=kernel_env, startup_timeout=60)
    try:
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def result(outputs: list[dict[str, Any]]) -> str:
    [value] = [o["data"]["text/plain"] for o in outputs if o["type"] == "execute_result"]
    return str(value)


def html(o: dict[str, Any]) -> str:
    return str(o["data"].get("text/html", ""))


def test_run_and_take_in_a_cell(kernel: Kernel) -> None:
    kernel.execute("import asyncio, time\nimport flowpump as fp")
    out = kernel.execute("fp.from_iterable(range(10)).map(lambda x: x * x).take(4)")
    assert result(out) == "[0, 1, 4, 9]"
    out = kernel.execute("r = (fp.from_iterable(range(5)) >> fp.collect()).run()\nr.events_in")
    assert result(out) == "5"
    assert not [o for o in out if o["type"] != "execute_result"]  # a quick run shows no live view


def test_a_long_run_shows_live_counts_then_a_summary(kernel: Kernel) -> None:
    code = """
def slow(n):
    for i in range(n):
        time.sleep(0.01)
        yield i

out = fp.collect()
report = (fp.from_iterable(slow(160)) >> fp.map(lambda x: x + 1) >> out).run()
report.events_out, sum(out.items)
"""
    outputs = kernel.execute(code)
    assert result(outputs) == str((160, sum(range(1, 161))))
    shown = [o for o in outputs if o["type"] in ("display_data", "update_display_data")]
    assert shown[0]["type"] == "display_data"
    ids = {o["transient"]["display_id"] for o in shown}
    assert len(ids) == 1  # updated in place
    assert "running" in html(shown[0])
    assert "<table" in html(shown[0])
    assert "finished" in html(shown[-1])
    assert "160 in" in html(shown[-1])
    assert "<table" not in html(shown[-1])  # the report that the cell returns is the table


def test_start_keeps_running_between_cells_and_updates_its_view(kernel: Kernel) -> None:
    code = """
async def ticks():
    i = 0
    while True:
        await asyncio.sleep(0.005)
        i += 1
        yield i

seen = fp.collect()
handle = (fp.from_iterable(ticks()) >> fp.filter(lambda i: i % 2 == 0) >> seen).start()
handle
"""
    first = kernel.execute(code)
    [view] = [o for o in first if o["type"] == "display_data"]
    display_id = view["transient"]["display_id"]
    assert "<div" in html(view)
    n1 = int(result(kernel.execute("len(seen.items)")))
    kernel.drain(1.2)  # no cell runs meanwhile: the kernel's loop keeps the pipeline going
    n2 = int(result(kernel.execute("len(seen.items)")))
    assert n2 > n1
    out = kernel.execute("handle.stop()\nfinal = await handle.wait()\nfinal.stopped_early, handle.done")
    assert result(out) == "(True, True)"
    kernel.drain(0.5)
    # The first cell's live view was updated in place from the background, and ends stopped.
    updates = [
        m["content"]
        for m in kernel.background
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id
    ]
    assert len(updates) >= 2
    assert "running" in html(updates[0])
    assert "stopped" in html(updates[-1])
    assert "<table" in html(updates[-1])  # a background run ends on its final table


def test_await_arun(kernel: Kernel) -> None:
    out = kernel.execute("r = await (fp.from_iterable(range(7)) >> fp.collect()).arun()\nr.events_out")
    assert result(out) == "7"


def test_pictures_and_tables_are_rich_outputs(kernel: Kernel) -> None:
    out = kernel.execute("fp.from_iterable([1, 2]) >> fp.map(str) >> fp.collect()")
    [res] = [o for o in out if o["type"] == "execute_result"]
    assert res["data"]["image/svg+xml"].startswith("<svg")
    out = kernel.execute("fp.from_iterable([{'a': 1}]).preview()")
    [res] = [o for o in out if o["type"] == "execute_result"]
    assert "<table" in res["data"]["text/html"]
