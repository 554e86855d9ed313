"""Logging to the host's log (`weir:operator/host.log`), tagged with the plugin's name.

Outside a component (plain CPython tests) lines go to stderr.
"""

import sys

try:  # imported at build time (pre-initialisation), see operators.py
    from wit_world.imports import host as _host
except ImportError:
    _host = None


def _log(level: str, message: str) -> None:
    if _host is None:
        print("[%s] %s" % (level, message), file=sys.stderr)
        return
    _host.log(_host.Level[level.upper()], str(message))


def trace(message: str) -> None:
    _log("trace", message)


def debug(message: str) -> None:
    _log("debug", message)


def info(message: str) -> None:
    _log("info", message)


def warn(message: str) -> None:
    _log("warn", message)


def error(message: str) -> None:
    _log("error", message)
