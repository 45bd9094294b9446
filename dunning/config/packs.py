"""The policy packs under config/compliance/, one per jurisdiction, loaded and checked."""

from __future__ import annotations

from pathlib import Path

from dunning.config import load_file
from dunning.config.compliance import CompliancePack
from dunning.errors import ConfigError, ConfigProblem


def load_packs(config_dir: Path, root: Path) -> dict[str, CompliancePack]:
    packs: dict[str, CompliancePack] = {}
    for path in sorted((config_dir / "compliance").glob("[A-Z]*.yaml")):
        pack = load_file(path, CompliancePack, root)
        if pack.jurisdiction != path.stem:
            shown = str(path.relative_to(root))
            raise ConfigError(
                [
                    ConfigProblem(
                        shown,
                        "jurisdiction",
                        f"is {pack.jurisdiction!r} but the file is named for {path.stem!r}",
                    )
                ]
            )
        packs[pack.jurisdiction] = pack
    return packs
