"""The one YAML reader of the project (params.yaml, profiles.yaml, files named on the
command line, repro-tolerance.yaml).

It reads YAML the way DVC does where PyYAML differs, so a file DVC accepts means the
same thing to ``movierec``:

- a key written twice in one mapping is refused (PyYAML silently keeps the last one,
  DVC refuses the file); the message names both lines;
- numbers and booleans are YAML 1.2's: ``1e-3``, ``1E5`` and ``.5`` are floats (PyYAML follows
  YAML 1.1 and reads ``1e-3`` as the string ``"1e-3"``, while DVC's reader takes it
  as a number); ``yes``/``no``/``on``/``off`` are text, as DVC reads them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from movierec.errors import ConfigError

# YAML 1.2 core schema floats (plus 1.1's forms, which PyYAML already accepted).
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(r"^[-+]?[0-9]+$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and duplicate keys refused."""


# Replace YAML 1.1's float and bool resolvers with 1.2's: 1.1's floats need a dot and
# a signed exponent, and its booleans include yes/no/on/off, which DVC reads as text.
_REPLACED = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float | int:
    text = loader.construct_scalar(node)
    if isinstance(text, str) and _INT.match(text.replace("_", "")):
        return int(text.replace("_", ""))
    return loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _float)


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"`{key}` is written twice (lines {first} and {again})")
        self.key, self.first, self.again = key, first, again


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise DuplicateKey(key, seen[key], line)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def parse_yaml(text: str, where: str = "<text>") -> Any:
    """``text`` as data; a syntax error or a repeated key is one :class:`ConfigError`
    naming ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as err:
        raise ConfigError(
            f"{where}: line {err.again}: `{err.key}` is written twice in the same section "
            f"(first on line {err.first}); keep one of them"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(f"{where}:{at} not valid YAML ({problem}); fix the file") from None


def read_yaml(path: str | Path, *, mapping: bool = True, missing: str | None = None) -> Any:
    """The YAML file ``path``; one line when it is missing, malformed or (with
    ``mapping``) not a mapping. ``missing`` is the advice for a file that is not there."""
    path = Path(path)
    if not path.is_file():
        advice = missing or ("it is a folder, not a file" if path.is_dir() else "no such file")
        raise ConfigError(f"{path}: {advice}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    loaded = parse_yaml(text, str(path))
    if mapping and loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys (got {type(loaded).__name__})")
    return {} if loaded is None and mapping else loaded
