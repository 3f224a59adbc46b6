"""The runtime: executor, channels, acknowledgements, reports."""

from ._report import RunReport, StageReport
from ._run import RunHandle

__all__ = ["RunHandle", "RunReport", "StageReport"]
