"""Credit-registry adapters: report delinquent accounts, and correct reports when they cure.

file-registry writes a documented, pluggable file format (docs/registry-format.md).
"""

from __future__ import annotations

from adapters.actions.credit_registry._formats import (
    COLUMNS,
    CORRECTION,
    REPORT,
    CsvRegistryFormat,
    JsonLinesRegistryFormat,
    RegistryFileError,
    RegistryFormat,
    RegistryLine,
    register_registry_format,
    registry_format,
    registry_formats,
    split_reference,
)
from adapters.actions.credit_registry.file import (
    DEFAULT_DIRECTORY,
    FileRegistryAdapter,
    FileRegistryOptions,
    RegistryFiles,
    read_registry,
)

__all__ = [
    "COLUMNS",
    "CORRECTION",
    "DEFAULT_DIRECTORY",
    "REPORT",
    "CsvRegistryFormat",
    "FileRegistryAdapter",
    "FileRegistryOptions",
    "JsonLinesRegistryFormat",
    "RegistryFileError",
    "RegistryFiles",
    "RegistryFormat",
    "RegistryLine",
    "read_registry",
    "register_registry_format",
    "registry_format",
    "registry_formats",
    "split_reference",
]
