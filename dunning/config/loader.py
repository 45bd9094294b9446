"""Load and validate every YAML file of a program directory into typed models.

A bad file is rejected whole with its path, the key and the reason; nothing runs on bad config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from dunning.errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigFile:
    """A known file under config/: its relative path glob and the model that validates it."""

    pattern: str
    model: type[BaseModel]
    required: bool = False


_REGISTRY: list[ConfigFile] = []


def register(pattern: str, model: type[BaseModel], *, required: bool = False) -> None:
    if any(entry.pattern == pattern for entry in _REGISTRY):
        return
    _REGISTRY.append(ConfigFile(pattern, model, required))


def registered() -> list[ConfigFile]:
    return list(_REGISTRY)


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def read_yaml(path: Path, root: Path | None = None) -> Any:
    """Parse one YAML file; syntax errors become ConfigError with the line and column."""
    shown = _display(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(shown, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(shown, "", "is not UTF-8 text")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError([ConfigProblem(shown, where, f"invalid YAML: {exc.problem}")]) from None
    return {} if data is None else data


def validation_problems(file: str, exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(ConfigProblem(file, key, message))
    return problems


def validate(model: type[M], data: Any, file: str) -> M:
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "", "must be a mapping of keys to values")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(file, exc)) from None


def load_file(path: Path, model: type[M], root: Path | None = None) -> M:
    return validate(model, read_yaml(path, root), _display(path, root))


def load_optional(path: Path, model: type[M], root: Path | None = None) -> M:
    """The file's model, or the model's defaults when the file does not exist."""
    if not path.exists():
        return model()
    return load_file(path, model, root)


def check_directory(
    config_dir: Path,
    root: Path,
    extra_checks: list[Callable[[], None]] | None = None,
) -> list[ConfigProblem]:
    """Validate every YAML file under config_dir; return every problem, not only the first."""
    problems: list[ConfigProblem] = []
    seen: set[Path] = set()
    for entry in _REGISTRY:
        matches = sorted(config_dir.glob(entry.pattern))
        if not matches and entry.required:
            problems.append(
                ConfigProblem(f"config/{entry.pattern}", "", "required file is missing")
            )
        for path in matches:
            seen.add(path)
            try:
                load_file(path, entry.model, root)
            except ConfigError as exc:
                problems.extend(exc.problems)
    for path in sorted(config_dir.rglob("*")):
        if path.suffix in {".yaml", ".yml"} and path not in seen:
            problems.append(
                ConfigProblem(
                    _display(path, root), "", "unknown config file (no model validates it)"
                )
            )
    for check in extra_checks or []:
        try:
            check()
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems
