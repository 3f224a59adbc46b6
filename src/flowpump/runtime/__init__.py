"""The runtime: executor, channels, acknowledgements, reports."""

from ._report import Latency, RunReport, StageReport
from ._run import RunHandle

__all__ = ["Latency", "RunHandle", "RunReport", "StageReport"]
