"""Finding and loading catalog files, with errors that name the file, the field, the bad value
and what is allowed.

Search order for each catalog folder (``hardware_profiles``, ``engine_profiles``, ``workloads``,
``workloads/models``, ``workloads/drafts``, ``calibration``): ``$RLSIM_CATALOG/<folder>`` if set, the source checkout
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
from ..inputs import check_yaml_size
from .schema import DatasetSpec, DraftSpec, EngineProfile, HardwareProfile, ModelSpec, Workload

T = TypeVar("T", bound=BaseModel)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    roots: list[Path] = []
    env = os.environ.get("RLSIM_CATALOG")
    if env:
        if not Path(env).is_dir():  # a typo here must not silently fall back to the built-in catalog
            raise CatalogError(
                f"RLSIM_CATALOG = {env!r} is not a folder; allowed: a folder holding any of hardware_profiles/, "
                "workloads/, workloads/models/, workloads/drafts/, calibration/ (or unset RLSIM_CATALOG)")
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


def describe_validation_error(err: ValidationError, raw=None) -> str:
    """A pydantic error as one line: each problem as ``field `a.b` = value: what is allowed``, joined by ';'.
    ``raw``: the input mapping, to show values pydantic does not echo."""
    items = []
    for e in err.errors():
        is_key = "[key]" in e["loc"]  # a dict key that is not allowed (e.g. peak_flops.fp4)
        parts_ = [x for x in e["loc"] if x != "[key]"]
        loc = ".".join(str(x) for x in parts_)
        value = raw if raw is not None else e.get("input")
        if raw is not None:
            for part in parts_:
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
        elif e["type"] == "missing":
            msg, value = "missing (a required key)", None
        elif e["type"] == "literal_error" and e.get("ctx", {}).get("expected"):
            msg = f"allowed: {e['ctx']['expected']}"
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        if is_key:
            msg, value = f"unknown key; {msg}", None
        if not loc or e["type"] == "value_error" and isinstance(value, dict):
            items.append(msg if not loc else f"`{loc}`: {msg}")
            continue
        shown = "" if value is None or isinstance(value, (dict, list)) else f" = {value!r}"
        items.append(f"field `{loc}`{shown}: {msg}")
    return "; ".join(items)


def _format_validation_error(path: Path, err: ValidationError, raw: dict) -> str:
    return f"{path}: {describe_validation_error(err, raw)}"


def _yaml_where(e: yaml.YAMLError) -> str:
    """A YAML error as one line: where (line, column) and what."""
    if isinstance(e, yaml.reader.ReaderError):
        ch = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        return f" at byte {e.position}: character {ch} is not allowed ({e.reason}); a text file is expected"
    mark, cmark = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = " ".join((getattr(e, "problem", None) or str(e)).split())
    ctx = getattr(e, "context", None)
    if ctx:
        what += f" ({ctx}" + (f" started at line {cmark.line + 1}, column {cmark.column + 1})" if cmark else ")")
    return f"{where}: {what}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one: a typo'd
    copy-paste would override a value without a word)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: let the base constructor complain
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first + 1}); each key may appear once",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)

if getattr(yaml, "__with_libyaml__", False):
    class _UniqueKeyCLoader(yaml.CSafeLoader):
        """``_UniqueKeyLoader`` on libyaml's parser (10x faster: catalog files are read at every start-up)."""

    _UniqueKeyCLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
else:  # pragma: no cover - PyYAML built without libyaml
    _UniqueKeyCLoader = None


def _load_yaml(text: str):
    """Parse with libyaml when the text is plain (the same mapping); any text the pure-Python reader would refuse,
    and any error, goes through the pure-Python loader, so errors read exactly as before."""
    if _UniqueKeyCLoader is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        try:
            return yaml.load(text, Loader=_UniqueKeyCLoader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


def load_yaml_model(path: Path, cls: type[T], overrides: dict | None = None) -> T:
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML{_yaml_where(e)}") from None
    except UnicodeDecodeError as e:
        raise CatalogError(f"{path}: not a UTF-8 text file (byte {e.start}: {e.object[e.start:e.start + 1]!r})") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read: {e.strerror}") from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to read") from None
    if raw is None:
        raise CatalogError(f"{path}: the file is empty; expected a mapping of fields (key: value lines)")
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping of fields (key: value lines), got a {type(raw).__name__}")
    check_yaml_size(raw, "catalog file", path, CatalogError)
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
    if p.suffix in (".yaml", ".yml"):
        if p.is_file():
            return p
        raise CatalogError(f"{what} file {name!r} " + ("is a folder" if p.is_dir() else "does not exist")
                           + f"; allowed: an existing .yaml file or a catalog name ({', '.join(sorted(files))})")
    if p.is_file():
        raise CatalogError(f"{what} file {name!r}: a catalog file must end in .yaml or .yml")
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


# Model families left out of the catalog on purpose, with the reason (a clear error instead of "unknown model").
NOT_MODELLED = {
    "gpt-oss": "gpt-oss-20b / gpt-oss-120b use attention sinks, sliding-window attention on every other layer (a KV "
               "cache bounded at the window) and MoE blocks of their own shape; rlsim's cost and memory models price "
               "neither the window nor the sinks, so a projection would be wrong, not approximate",
}


@functools.lru_cache(maxsize=None)
def hf_model_ids() -> dict[str, str]:
    """Hugging Face id (lower case) -> catalog model name: every model's ``hf_id`` and ``hf_aliases``."""
    out: dict[str, str] = {}
    for name, path in _names("workloads/models").items():
        spec = load_yaml_model(path, ModelSpec)
        for hid in (spec.hf_id, *spec.hf_aliases):
            out[hid.strip().lower()] = spec.name
    return out


def resolve_model_name(name: str) -> str | None:
    """A catalog model's canonical name from its name, an alias or a Hugging Face id (``Qwen/Qwen3-8B``, any case;
    also the id's last part, ``Qwen3-8B``); None if nothing matches."""
    models = list_models()
    if name in models:
        return models[name]
    low = name.strip().lower()
    lower = {k.lower(): v for k, v in models.items()}
    if low in lower:
        return lower[low]
    hf = hf_model_ids()
    if low in hf:
        return hf[low]
    base = low.rsplit("/", 1)[-1]
    if base in lower:
        return lower[base]
    by_base = {k.rsplit("/", 1)[-1]: v for k, v in hf.items()}
    return by_base.get(base)


def nearest_models(name: str, n: int = 3) -> list[str]:
    """The catalog names or Hugging Face ids closest to ``name`` (for an error message)."""
    import difflib

    cands = {**{k: k for k in list_models()}, **{hid: hid for hid in _hf_ids_as_written()}}
    low = {k.lower(): k for k in cands}
    hits = difflib.get_close_matches(name.strip().lower(), list(low), n=n, cutoff=0.5)
    base = name.strip().lower().rsplit("/", 1)[-1]
    hits += [h for h in difflib.get_close_matches(base, list(low), n=n, cutoff=0.6) if h not in hits]
    return [low[h] for h in hits[:n]]


@functools.lru_cache(maxsize=None)
def _hf_ids_as_written() -> tuple[str, ...]:
    out = []
    for path in _names("workloads/models").values():
        spec = load_yaml_model(path, ModelSpec)
        out += [spec.hf_id, *spec.hf_aliases]
    return tuple(out)


@functools.lru_cache(maxsize=None)
def load_model(name: str) -> ModelSpec:
    """A catalog model by name, alias or Hugging Face id (``hf_id`` / ``hf_aliases``), or a model YAML path."""
    if name.endswith((".yaml", ".yml")):
        return load_yaml_model(Path(name), ModelSpec)
    canon = resolve_model_name(name)
    if canon is None:
        for key, why in NOT_MODELLED.items():
            if key in name.lower():
                raise CatalogError(f"model {name!r} is not in the catalog: {why}")
        near = nearest_models(name)
        raise CatalogError(f"unknown model {name!r}" + (f" (nearest: {', '.join(near)})" if near else "")
                           + f"; allowed: {', '.join(sorted(list_models()))}, or a Hugging Face id of one of them "
                           "(`rlsim models` lists them)")
    return load_yaml_model(_names("workloads/models")[canon], ModelSpec)


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


@functools.lru_cache(maxsize=None)
def load_engine(name: str) -> EngineProfile:
    """An engine profile (engine_profiles/<name>.yaml, or a path to one)."""
    return load_yaml_model(_lookup("engine_profiles", "engine profile", name), EngineProfile)


def list_engines() -> list[str]:
    return sorted(_names("engine_profiles"))


@functools.lru_cache(maxsize=None)
def find_dataset(name: str) -> DatasetSpec | None:
    """The catalog data set (workloads/datasets/) whose name or alias is ``name`` (case-insensitive), or None."""
    try:
        files = _names("workloads/datasets")
    except CatalogError:
        return None
    low = name.strip().lower()
    for path in files.values():
        spec = load_yaml_model(path, DatasetSpec)
        if low in {spec.name.lower(), *(a.lower() for a in spec.aliases)}:
            return spec
    return None
