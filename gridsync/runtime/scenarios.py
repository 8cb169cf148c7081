"""Scenario catalogue for the running service: bundled scenarios plus operator uploads.

Uploaded files are validated with the same pydantic schema as ``gridsync simulate`` and
written into ``upload_dir``; ``select`` records which scenario the twin should run (the
runtime's ``on_scenario_change`` hook rebuilds the agents).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from gridsync.model.scenario_config import ScenarioError, load_scenario_config, parse_scenario
from gridsync.sim.builder import default_scenario_path

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ScenarioCatalog:
    """Name -> scenario file. ``upload_dir=None`` disables uploads."""

    def __init__(self, upload_dir: str | Path | None = None, current: str = "default") -> None:
        self.bundled_dir = default_scenario_path().parent
        self.upload_dir = Path(upload_dir) if upload_dir else None
        self.current = current
        self.current_days: int | None = None

    def _files(self) -> dict[str, Path]:
        files = {p.stem: p for p in sorted(self.bundled_dir.glob("*.toml"))}
        if self.upload_dir and self.upload_dir.is_dir():
            files.update({p.stem: p for p in sorted(self.upload_dir.glob("*.toml"))})
        return files

    def path(self, name: str) -> Path:
        files = self._files()
        if name not in files:
            msg = f"scenario {name!r} not found; available: {', '.join(files) or 'none'}"
            raise KeyError(msg)
        return files[name]

    def list(self) -> list[dict[str, Any]]:
        out = []
        for name, path in self._files().items():
            try:
                cfg = load_scenario_config(path)
                out.append(
                    {
                        "name": name,
                        "title": cfg.name,
                        "description": cfg.description,
                        "start": str(cfg.time.start),
                        "days": cfg.time.days,
                        "bundled": path.parent == self.bundled_dir,
                        "current": name == self.current,
                    }
                )
            except ScenarioError as err:
                out.append({"name": name, "error": str(err), "current": name == self.current})
        return out

    def upload(self, name: str, toml_text: str) -> dict[str, Any]:
        """Validate and save a TOML scenario; raises ScenarioError naming the bad fields."""
        if self.upload_dir is None:
            raise ScenarioError("scenario uploads are disabled (no upload directory configured)")
        if not _NAME_RE.match(name):
            msg = f"scenario name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
            raise ScenarioError(msg)
        if name in {p.stem for p in self.bundled_dir.glob("*.toml")}:
            msg = f"scenario name {name!r} is bundled and cannot be replaced"
            raise ScenarioError(msg)
        try:
            data = tomllib.loads(toml_text)
        except tomllib.TOMLDecodeError as err:
            msg = f"scenario {name!r}: invalid TOML: {err}"
            raise ScenarioError(msg) from None
        cfg = parse_scenario(data, source=f"scenario {name!r}")
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        (self.upload_dir / f"{name}.toml").write_text(toml_text, encoding="utf-8")
        return {"name": name, "title": cfg.name, "days": cfg.time.days}

    def select(self, name: str, days: int | None = None) -> Path:
        path = self.path(name)
        self.current, self.current_days = name, days
        return path
