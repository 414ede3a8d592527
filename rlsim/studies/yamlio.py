"""Reading a user's YAML file (sweep grids, NeMo-RL recipes) into a mapping, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigurationError
from ..inputs import check_yaml_size


def read_yaml_mapping(path: Path, what: str, mapping_hint: str = "", empty_ok: bool = False) -> dict:
    """The file's top-level mapping; ConfigurationError naming ``what`` and the file when it cannot be read,
    is not UTF-8 YAML, is not a mapping (an empty file is ``{}`` with ``empty_ok``) or its aliases expand to
    an absurd size."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(f"{what} {path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{what} {path}: not a UTF-8 text file (byte {e.start}: "
                                 f"{e.object[e.start:e.start + 1]!r})") from None
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{what} {path}: not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigurationError(f"{what} {path}: nested too deeply to read") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{what} {path}: expected a mapping{mapping_hint}, got {type(raw).__name__}")
    check_yaml_size(raw, what, path)
    return raw
