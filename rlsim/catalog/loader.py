"""Finding and loading catalog files, with errors that name the file, the field, the bad value
and what is allowed.

Search order for each catalog folder (``hardware_profiles``, ``workloads``, ``workloads/models``,
``workloads/drafts``, ``calibration``): ``$RLSIM_CATALOG/<folder>`` if set, the source checkout
(the repository root next to the package), then the copy shipped inside the wheel
(``rlsim/_data/<folder>``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import CatalogError
from .schema import DraftSpec, HardwareProfile, ModelSpec, Workload

T = TypeVar("T", bound=BaseModel)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    roots: list[Path] = []
    env = os.environ.get("RLSIM_CATALOG")
    if env:
        roots.append(Path(env))
    roots.append(_PACKAGE_DIR.parent)  # source checkout / editable install
    roots.append(_PACKAGE_DIR / "_data")  # wheel install
    return roots


def catalog_dir(folder: str) -> Path:
    for root in data_roots():
        d = root / folder
        if d.is_dir():
            return d
    raise CatalogError(f"catalog folder {folder!r} not found under any of: {', '.join(map(str, data_roots()))}")


def _format_validation_error(path: Path, err: ValidationError, raw: dict) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(file)"
        value = raw
        for part in e["loc"]:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                value = None
                break
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        elif e["type"] == "literal_error" and e.get("ctx", {}).get("expected"):
            msg = f"allowed: {e['ctx']['expected']}"
        shown = "" if value is None or isinstance(value, (dict, list)) else f" = {value!r}"
        lines.append(f"{path}: field `{loc}`{shown}: {msg}")
    return "; ".join(lines)


def load_yaml_model(path: Path, cls: type[T], overrides: dict | None = None) -> T:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read: {e.strerror}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    if overrides:
        raw = {**raw, **overrides}
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise CatalogError(_format_validation_error(path, e, raw)) from None


def _names(folder: str) -> dict[str, Path]:
    d = catalog_dir(folder)
    return {p.stem: p for p in sorted(d.glob("*.yaml"))}


def _lookup(folder: str, what: str, name: str) -> Path:
    files = _names(folder)
    if name in files:
        return files[name]
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    raise CatalogError(f"unknown {what} {name!r}; allowed: {', '.join(sorted(files))} (or a path to a .yaml file)")


@functools.lru_cache(maxsize=None)
def list_models() -> dict[str, str]:
    """Model name or alias -> canonical name."""
    out: dict[str, str] = {}
    for name, path in _names("workloads/models").items():
        spec = load_yaml_model(path, ModelSpec)
        out[spec.name] = spec.name
        for a in spec.aliases:
            out[a] = spec.name
    return out


@functools.lru_cache(maxsize=None)
def load_model(name: str) -> ModelSpec:
    if name.endswith((".yaml", ".yml")):
        return load_yaml_model(Path(name), ModelSpec)
    models = list_models()
    if name not in models:
        raise CatalogError(f"unknown model {name!r}; allowed: {', '.join(sorted(models))}")
    return load_yaml_model(_names("workloads/models")[models[name]], ModelSpec)


@functools.lru_cache(maxsize=None)
def load_draft(name: str) -> DraftSpec:
    return load_yaml_model(_lookup("workloads/drafts", "draft head", name), DraftSpec)


@functools.lru_cache(maxsize=None)
def load_hardware(name: str) -> HardwareProfile:
    return load_yaml_model(_lookup("hardware_profiles", "hardware profile", name), HardwareProfile)


def list_hardware() -> list[str]:
    return sorted(_names("hardware_profiles"))


def list_workloads() -> list[str]:
    return sorted(_names("workloads"))


@functools.lru_cache(maxsize=None)
def load_workload(name: str) -> Workload:
    return load_yaml_model(_lookup("workloads", "workload", name), Workload)
