"""Load the VM model's parameters: the built-in ``data/vm_profiles.toml`` or a user's ``--vm-profile FILE``.

The built-in file is read in its parsed form, ``data/vm_profiles.json`` (the same document: the suite checks
that it equals the TOML's): parsing JSON takes ~0.1 ms where importing :mod:`tomllib` and parsing the TOML take
~5 ms, and every ``inspect`` reads it.  A user's file is TOML.

A user file has the same shape; the families and keys it gives replace the built-in ones (so a calibration can
change one number).  Invalid files are a :class:`~ociinspect.errors.PolicyError` naming the key (exit 2); an
unknown key or table (a typo such as ``headrom``) is one too, with its line and a did-you-mean, rather than
being ignored.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ociinspect.analyzers.vm import Span, VmParameters, VmProfile
from ociinspect.errors import PolicyError

__all__ = ["load_parameters"]

_MB, _GB, _GIB = 10**6, 10**9, 2**30


def _read(text: str, origin: str) -> dict[str, Any]:
    import tomllib  # (~3-5 ms: only for a user's file)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"reading VM profile {origin}: not valid TOML ({exc})", hint="see docs/vm-model.md for the format"
        ) from None


#: every key a profile file may set, per table (``families.*`` share one set)
_TOP_KEYS = ("schema_version", "fallback_family", "global", "families")
_GLOBAL_KEYS = (
    "download_ratio",
    "headroom",
    "writable_layer_mb",
    "download_ratio_source",
    "headroom_source",
    "writable_layer_source",
)
_FAMILY_KEYS = (
    "label",
    "os_ids",
    "container_base_mb",
    "vm_os_gb",
    "disk_gib",
    "confidence",
    "derivation",
    "sources",
    "disk_source",
    "components_mb",
)
_SPAN_KEYS = ("low", "central", "high")


def _check_keys(doc: dict[str, Any], text: str, origin: str) -> None:
    """Refuse a key or table the model does not know, naming it, its line and the closest known key (cost:
    one pass over the file's lines per unknown key, which ends the run)."""
    from ociinspect.model.tomltext import did_you_mean, locate_toml

    def unknown(table: list[str], key: str, known: tuple[str, ...]) -> PolicyError:
        line = locate_toml(text, table, key)
        where = ".".join([*table, key])
        kind = "table" if isinstance(_get(doc, [*table, key]), dict) else "key"
        return PolicyError(
            f"reading VM profile {origin}{f' line {line}' if line else ''}: unknown {kind} {where}",
            hint=did_you_mean(key, known) + " (see docs/vm-model.md)",
        )

    def check(table: list[str], value: Any, known: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key in value:
                if key not in known:
                    raise unknown(table, key, known)

    check([], doc, _TOP_KEYS)
    g = doc.get("global")
    check(["global"], g, _GLOBAL_KEYS)
    if isinstance(g, dict):
        check(["global", "download_ratio"], g.get("download_ratio"), _SPAN_KEYS)
    families = doc.get("families")
    if isinstance(families, dict):
        for name, fam in families.items():
            check(["families", name], fam, _FAMILY_KEYS)
            if isinstance(fam, dict):
                check(["families", name, "vm_os_gb"], fam.get("vm_os_gb"), _SPAN_KEYS)


def _get(doc: dict[str, Any], path: list[str]) -> Any:
    value: Any = doc
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _number(doc: dict[str, Any], key: str, where: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PolicyError(f"VM profile: {where}.{key} must be a non-negative number, got {value!r}")
    return float(value)


def _span(doc: dict[str, Any], key: str, where: str, unit: float) -> Span:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise PolicyError(f"VM profile: {where}.{key} must be a table {{ low, central, high }}")
    low, central, high = (_number(value, k, f"{where}.{key}") * unit for k in ("low", "central", "high"))
    if not low <= central <= high:
        raise PolicyError(f"VM profile: {where}.{key} must satisfy low <= central <= high")
    return Span(low, central, high)


def _profile(family: str, doc: dict[str, Any]) -> VmProfile:
    where = f"families.{family}"
    components = doc.get("components_mb", {})
    if not isinstance(components, dict):
        raise PolicyError(f"VM profile: {where}.components_mb must be a table")
    return VmProfile(
        family=family,
        label=str(doc.get("label", family)),
        os_ids=tuple(str(i) for i in doc.get("os_ids", [])),
        container_base=int(_number(doc, "container_base_mb", where) * _MB),
        vm_os=_span(doc, "vm_os_gb", where, _GB),
        disk=int(_number(doc, "disk_gib", where) * _GIB),
        confidence=str(doc.get("confidence", "unknown")),
        derivation=str(doc.get("derivation", "")),
        sources=tuple(str(s) for s in doc.get("sources", [])),
        disk_source=str(doc.get("disk_source", "")),
        components={str(k): int(_number(components, k, f"{where}.components_mb") * _MB) for k in components},
    )


def _builtin_text(name: str = "vm_profiles.json") -> str:
    """``ociinspect/data/NAME``: read from the package's directory, or through :mod:`importlib.resources` when
    the package is not a plain directory (a zip).  Cost: one small file read (:mod:`importlib.resources` with
    ``zipfile`` costs ~4-6 ms to import: only for the zip)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        from importlib import resources

        return resources.files("ociinspect").joinpath(f"data/{name}").read_text(encoding="utf-8")


def _builtin() -> dict[str, Any]:
    """The built-in parameters' document: ``data/vm_profiles.json``, the parsed ``data/vm_profiles.toml``."""
    doc = json.loads(_builtin_text())
    if not isinstance(doc, dict):
        raise PolicyError("the built-in VM profile is damaged", hint="reinstall ociinspect")
    return doc


def load_parameters(path: str | None = None) -> VmParameters:
    """The built-in parameters, overridden by the TOML file at ``path`` when given (cost: reads 1–2 small files)."""
    doc = _builtin()
    origin = "built-in (ociinspect/data/vm_profiles.toml)"
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise PolicyError(
                f"reading VM profile {path!r}: {exc.strerror}", hint="check the --vm-profile path"
            ) from None
        user = _read(text, repr(path))
        _check_keys(user, text, repr(path))
        doc, origin = _merge(doc, user), path
    g = doc.get("global")
    if not isinstance(g, dict):
        raise PolicyError("VM profile: the [global] table is missing")
    families = doc.get("families")
    if not isinstance(families, dict) or not families:
        raise PolicyError("VM profile: no [families.*] tables")
    profiles = {name: _profile(name, f) for name, f in families.items() if isinstance(f, dict)}
    fallback = str(doc.get("fallback_family", "static"))
    if fallback not in profiles:
        raise PolicyError(f"VM profile: fallback_family {fallback!r} is not one of the families")
    return VmParameters(
        profiles=profiles,
        download_ratio=_span(g, "download_ratio", "global", 1.0),
        headroom=_number(g, "headroom", "global"),
        writable_layer=int(_number(g, "writable_layer_mb", "global") * _MB),
        fallback_family=fallback,
        origin=origin,
        sources={k[: -len("_source")]: str(v) for k, v in g.items() if k.endswith("_source")},
    )
