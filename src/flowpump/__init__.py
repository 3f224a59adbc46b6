"""flowpump: typed stream processing for Python.

>>> import flowpump as fp
>>> (fp.from_iterable(range(10)) >> fp.map(lambda x: x * x) >> fp.filter(lambda x: x % 2 == 1)).take(3)
[1, 9, 25]
"""

from contextlib import suppress as _suppress

from ._errors import DeadLetter as DeadLetter
from ._errors import FlowpumpError as FlowpumpError
from ._errors import PermanentSinkError as PermanentSinkError
from ._errors import PipelineDefinitionError as PipelineDefinitionError
from ._errors import PipelineError as PipelineError
from ._errors import PipelineTypeError as PipelineTypeError
from ._graph import Flow as Flow
from ._graph import Pipeline as Pipeline
from ._graph import Processor as Processor
from ._graph import Sink as Sink
from ._graph import Source as Source
from ._graph import merge as merge
from ._graph import tee as tee
from ._ops import batch as batch
from ._ops import enrich as enrich
from ._ops import filter as filter  # noqa: A004 - the contract's name
from ._ops import flat_map as flat_map
from ._ops import map as map  # noqa: A004 - the contract's name
from ._ops import map_async as map_async
from ._ops import tap as tap
from ._ops import unbatch as unbatch
from .app import Application as Application
from .app import ApplicationError as ApplicationError
from .app import ConfigError as ConfigError
from .app import HTTPClient as HTTPClient
from .app import Lookup as Lookup
from .app import LookupRefreshError as LookupRefreshError
from .app import MissingDependencyError as MissingDependencyError
from .app import Postgres as Postgres
from .app import SQLite as SQLite
from .app import cron as cron
from .app import every as every
from .app import on as on
from .app import once as once
from .app import poll as poll
from .connectors.files import read_csv as read_csv
from .connectors.files import read_jsonl as read_jsonl
from .connectors.files import read_lines as read_lines
from .connectors.files import write_jsonl as write_jsonl
from .connectors.files import write_lines as write_lines
from .connectors.memory import Collect as Collect
from .connectors.memory import collect as collect
from .connectors.memory import from_iterable as from_iterable
from .connectors.memory import sink as sink
from .connectors.sql import read_sql as read_sql
from .connectors.sql import to_sql as to_sql
from .connectors.stdio import stdin as stdin
from .connectors.stdio import stdout as stdout
from .runtime import RunHandle as RunHandle
from .runtime import RunReport as RunReport
from .runtime import StageReport as StageReport

__all__ = [
    "Application",
    "ApplicationError",
    "Collect",
    "ConfigError",
    "DeadLetter",
    "Flow",
    "FlowpumpError",
    "HTTPClient",
    "Lookup",
    "LookupRefreshError",
    "MissingDependencyError",
    "PermanentSinkError",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineTypeError",
    "Postgres",
    "Processor",
    "RunHandle",
    "RunReport",
    "SQLite",
    "Sink",
    "Source",
    "StageReport",
    "batch",
    "collect",
    "cron",
    "enrich",
    "every",
    "filter",
    "flat_map",
    "from_iterable",
    "map",
    "map_async",
    "merge",
    "on",
    "once",
    "poll",
    "read_csv",
    "read_jsonl",
    "read_lines",
    "read_sql",
    "sink",
    "stdin",
    "stdout",
    "tap",
    "tee",
    "to_sql",
    "unbatch",
    "write_jsonl",
    "write_lines",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("flowpump.") and hasattr(_obj, "__qualname__"):
        # Reprs and tracebacks show flowpump.Flow rather than a private module path.
        with _suppress(AttributeError, TypeError):
            _obj.__module__ = "flowpump"
del _name, _obj
