"""Command-line flags generated from an options dataclass (one source of truth for every training command)."""
from __future__ import annotations

import argparse
import dataclasses
import typing

_TYPES = {int: int, float: float, str: str, "int": int, "float": float, "str": str}


def flag_type(f: dataclasses.Field) -> typing.Callable:
    """The argparse type of a field: its metadata's ``type``, else its annotation (``"float | None"`` → float)."""
    if "type" in f.metadata:
        return f.metadata["type"]
    return _TYPES.get(f.type) or _TYPES.get(str(f.type).split(" ")[0], str)


def add_option_flags(parser: argparse.ArgumentParser, fields: typing.Iterable[dataclasses.Field]) -> None:
    """``--name-with-dashes`` for every field, its help from ``metadata["help"]`` (+ the default); a bool field is
    a switch (``--no-x`` when it defaults to on); ``metadata["choices"]`` limits the values."""
    for f in fields:
        name = f.name.replace("_", "-")
        help_ = f"{f.metadata['help']} (default: {f.default})"
        if f.type in (bool, "bool"):
            if f.default:
                parser.add_argument(f"--no-{name}", dest=f.name, action="store_false", help=help_)
            else:
                parser.add_argument(f"--{name}", dest=f.name, action="store_true", help=help_)
            continue
        parser.add_argument(f"--{name}", dest=f.name, type=flag_type(f), default=f.default,
                            choices=f.metadata.get("choices"), help=help_)


def options_from(args: argparse.Namespace, cls):
    """An instance of the options dataclass ``cls`` from parsed flags."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
