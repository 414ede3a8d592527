"""Reading a user's YAML file (sweep grids, NeMo-RL recipes) into a mapping, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigurationError


def read_yaml_mapping(path: Path, what: str, mapping_hint: str = "", empty_ok: bool = False) -> dict:
    """The file's top-level mapping; ConfigurationError naming ``what`` and the file when it cannot be read,
    is not YAML, or is not a mapping (an empty file is ``{}`` with ``empty_ok``)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigurationError(f"{what} {path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{what} {path}: not valid YAML: {e}") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{what} {path}: expected a mapping{mapping_hint}, got {type(raw).__name__}")
    return raw
