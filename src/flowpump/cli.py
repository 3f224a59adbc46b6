"""The ``flowpump`` command (also ``python -m flowpump``).

Subcommands: ``demo``, ``run TARGET``, ``explain TARGET``, ``graph TARGET``. A TARGET is
``path/to/file.py:name`` or ``package.module:name`` naming a Pipeline (or Flow for ``graph``;
for ``run`` also an ``fp.Application``, with ``--config`` and ``--http``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import FlowpumpError
from ._graph import Flow, Pipeline, Processor, Sink
from ._live import DELAY, choose_view

if TYPE_CHECKING:
    from .runtime._report import RunReport


def load_target(target: str) -> Any:
    """The object named by ``file.py:name`` or ``module:name``."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        msg = f"target {target!r} must look like app.py:pipeline or package.module:pipeline"
        raise SystemExit(msg)
    if where.endswith(".py") or os.sep in where:
        if not os.path.exists(where):
            msg = f"no such file: {where}"
            raise SystemExit(msg)
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(where))[0], where)
        if spec is None or spec.loader is None:
            msg = f"cannot import {where}"
            raise SystemExit(msg)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, name)
    except AttributeError:
        msg = f"{where} has no attribute {name!r}"
        raise SystemExit(msg) from None


def _pipeline(obj: Any, target: str) -> Pipeline:
    if isinstance(obj, Pipeline):
        return obj
    msg = f"{target} is a {type(obj).__name__}, not a flowpump Pipeline (flow >> sink)"
    raise SystemExit(msg)


async def _run_until_signal(pipeline: Pipeline, *, fuse: bool, progress: bool | None) -> RunReport:
    """Run ``pipeline``; SIGINT/SIGTERM stop it gracefully (sources stop, sinks flush), a second cancels."""
    handle = pipeline.start(fuse=fuse, progress=False)
    view = choose_view(pipeline, progress, keep_table=False, tty=True)
    if view is not None:
        handle.watch(view, delay=0.0 if progress else DELAY)
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    task = asyncio.ensure_future(handle.wait())

    asked = False

    def on_signal() -> None:
        nonlocal asked
        if asked:
            task.cancel()  # a second signal: stop waiting for the drain
        asked = True
        handle.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - e.g. Windows
                continue
            signals.append(sig)
    try:
        return await task
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def _app_summary(status: Any) -> str:
    lines = [f"application {status.state}"]
    for p in status.pipelines.values():
        err = f", last error: {p.last_error}" if p.last_error else ""
        latency = ""
        if p.latency_p50 is not None and p.latency_p99 is not None:
            latency = f", latency p50 {p.latency_p50 * 1000:.1f} ms p99 {p.latency_p99 * 1000:.1f} ms"
        lines.append(
            f"  {p.name}: {p.state}, in {p.events_in}, out {p.events_out}, filtered {p.filtered}, "
            f"dead-lettered {p.dead_lettered}, restarts {p.restarts}{latency}{err}"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowpump", description="Typed stream processing.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="run a small service on SQLite (a lookup, a trigger, two pipelines) on a sample clickstream"
    )
    demo.add_argument("--dir", default="demo-out", help="working directory (default: demo-out)")
    demo.add_argument("-n", type=int, default=200_000, help="number of clicks (default: 200000)")
    run = sub.add_parser("run", help="run a pipeline: flowpump run app.py:pipeline")
    run.add_argument("target")
    run.add_argument("--no-fuse", action="store_true", help="run the unfused plan (debugging)")
    run.add_argument("--http", metavar="HOST:PORT", help="serve /metrics and /status (an Application target)")
    run.add_argument("--config", metavar="FILE", help="settings TOML for an Application (sets FLOWPUMP_CONFIG)")
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr for bounded sources (default: when stderr is a terminal)",
    )
    explain = sub.add_parser("explain", help="print the execution plan of a pipeline")
    explain.add_argument("target")
    explain.add_argument("--no-fuse", action="store_true")
    graph = sub.add_parser("graph", help="write a picture (SVG) of a pipeline's graph")
    graph.add_argument("target")
    graph.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    graph.add_argument("--no-fuse", action="store_true", help="draw the unfused plan (one box per step)")
    graph.add_argument(
        "--renderer",
        choices=("auto", "graphviz", "builtin"),
        default="auto",
        help="layout engine (default: Graphviz's dot when installed, else the built-in layout)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowpump`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import main as demo

            return demo(args.dir, args.n)
        if args.command == "run":
            if args.config:
                # Set before the target is imported: its module may read app.settings at import.
                os.environ["FLOWPUMP_CONFIG"] = args.config
            obj = load_target(args.target)
            from .app.application import Application

            if isinstance(obj, Application):
                status = obj.run(http=args.http, progress=args.progress)
                print(_app_summary(status))
                failed = [p for p in status.pipelines.values() if p.state == "failed" and not p.background]
                return 1 if failed or status.state == "failed" else 0
            if args.http:
                msg = f"--http serves an Application's metrics; {args.target} is a {type(obj).__name__}"
                raise SystemExit(msg)
            pipeline = _pipeline(obj, args.target)
            try:
                report = asyncio.run(_run_until_signal(pipeline, fuse=not args.no_fuse, progress=args.progress))
            except (asyncio.CancelledError, KeyboardInterrupt):
                print("flowpump: interrupted (a second signal): the run was cancelled", file=sys.stderr)
                return 130
            print(report)
            return 0
        if args.command == "explain":
            print(_pipeline(load_target(args.target), args.target).explain(fuse=not args.no_fuse))
            return 0
        if args.command == "graph":
            from .notebook import to_svg

            obj = load_target(args.target)
            if not isinstance(obj, (Flow, Processor, Sink, Pipeline)):
                msg = f"{args.target} is a {type(obj).__name__}, not a flowpump Pipeline, Flow, Processor or Sink"
                raise SystemExit(msg)
            svg = to_svg(obj, fuse=False if args.no_fuse else None, renderer=args.renderer)
            if args.output == "-":
                sys.stdout.write(svg)
            else:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(svg)
            return 0
    except FlowpumpError as exc:
        print(f"flowpump: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 2
