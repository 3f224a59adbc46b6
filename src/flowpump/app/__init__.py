"""The application frame: Application, Connections, Lookups, Triggers, settings and metrics.

Exception hierarchy (all are ``fp.FlowpumpError``)::

    ApplicationError         the application could not start (a connection or lookup failed)
    ConfigError              settings do not fit the settings Struct (``key``, ``expected``)
    ConnectionFailedError    a connection could not be opened or failed its health check
    LookupRefreshError       a lookup refresh failed; the previous table stays in use
    MissingDependencyError   an optional driver is missing; the message names the extra
"""

from .application import AppHandle as AppHandle
from .application import Application as Application
from .application import ApplicationError as ApplicationError
from .application import AppStatus as AppStatus
from .application import PipelineStatus as PipelineStatus
from .clock import SystemClock as SystemClock
from .clock import VirtualClock as VirtualClock
from .clock import current_clock as current_clock
from .clock import use_clock as use_clock
from .config import ConfigError as ConfigError
from .connections import Connection as Connection
from .connections import ConnectionFailedError as ConnectionFailedError
from .connections import HTTPClient as HTTPClient
from .connections import MissingDependencyError as MissingDependencyError
from .connections import Postgres as Postgres
from .connections import SQLConnection as SQLConnection
from .connections import SQLite as SQLite
from .lookups import KeyLookup as KeyLookup
from .lookups import Lookup as Lookup
from .lookups import LookupRefreshError as LookupRefreshError
from .poll import poll as poll
from .triggers import Trigger as Trigger
from .triggers import cron as cron
from .triggers import every as every
from .triggers import on as on
from .triggers import once as once

__all__ = [
    "AppHandle",
    "AppStatus",
    "Application",
    "ApplicationError",
    "ConfigError",
    "Connection",
    "ConnectionFailedError",
    "HTTPClient",
    "KeyLookup",
    "Lookup",
    "LookupRefreshError",
    "MissingDependencyError",
    "PipelineStatus",
    "Postgres",
    "SQLConnection",
    "SQLite",
    "SystemClock",
    "Trigger",
    "VirtualClock",
    "cron",
    "current_clock",
    "every",
    "on",
    "once",
    "poll",
    "use_clock",
]
