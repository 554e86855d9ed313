"""Declarative config parsing with serde-like rules.

An operator class may declare `CONFIG = {"key": default, ...}`. The SDK then
parses the JSON given to `init`, refuses unknown keys and values whose type
differs from the default's (an int is accepted for a float default), fills in
the defaults and passes the resulting dict to the constructor. Use
`required(type)` for keys without a default.
"""

import json
from typing import Any, Dict, Optional

from .errors import InvalidConfig


class required:
    """Marks a config key as mandatory, of the given type (str, float, int, bool, list, dict)."""

    def __init__(self, type: type):
        self.type = type


def _type_name(t: type) -> str:
    return {str: "a string", float: "a number", int: "an integer", bool: "a boolean",
            list: "an array", dict: "an object"}.get(t, t.__name__)


def _coerce(key: str, value: Any, expected: type) -> Any:
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, expected):
        return value
    raise InvalidConfig("`%s`: expected %s, got %s" % (key, _type_name(expected), json.dumps(value)))


def parse_config(text: str, schema: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Parses the JSON config; with a `schema` (a CONFIG dict), validates it and fills defaults."""
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise InvalidConfig("config is not valid JSON: %s" % e) from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidConfig("config must be a JSON object, got %s" % json.dumps(config))
    if schema is None:
        return config
    unknown = [k for k in config if k not in schema]
    if unknown:
        raise InvalidConfig("unknown field `%s`, expected one of %s"
                            % (unknown[0], ", ".join("`%s`" % k for k in schema)))
    out = {}
    for key, default in schema.items():
        if isinstance(default, required):
            if key not in config:
                raise InvalidConfig("missing field `%s`" % key)
            out[key] = _coerce(key, config[key], default.type)
        elif key in config:
            out[key] = _coerce(key, config[key], type(default) if default is not None else object)
        else:
            out[key] = default
    return out
