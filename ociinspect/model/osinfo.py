"""Base-OS identification from file contents (``/etc/os-release`` and friends) — pure parsing, no I/O.

:func:`parse_os_release` reads the freedesktop ``os-release`` format; :func:`identify` turns what was found in an
image (os-release text, ``/etc/alpine-release``, distroless markers, the config's ``os``) into an :class:`OsInfo`
with a VM-model family (see ``ociinspect/data/vm_profiles.toml``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ociinspect.model.record import record
from ociinspect.model.textsafe import is_uint

__all__ = ["OS_FILES", "OsInfo", "identify", "parse_os_release"]

#: Paths (normalised, no leading ``/``) whose contents identify the OS, in order of authority.  Debian, Ubuntu
#: and Fedora make ``/etc/os-release`` a symlink to ``/usr/lib/os-release``, which a tar stream reaches only deep
#: into ``usr/``; the other ``etc/`` files let detection stop at the end of ``etc/`` (see :mod:`osdetect`).
OS_FILES = (
    "etc/os-release",
    "usr/lib/os-release",
    "etc/lsb-release",
    "etc/debian_version",
    "etc/alpine-release",
    "etc/redhat-release",
    "etc/system-release",
)
#: Paths whose mere presence says "distroless" (Google's distroless images keep dpkg status per package here).
DISTROLESS_MARKERS = ("var/lib/dpkg/status.d",)

_FAMILY_BY_ID = {
    "ubuntu": "ubuntu",
    "debian": "debian",
    "raspbian": "debian",
    "rhel": "rhel",
    "centos": "rhel",
    "rocky": "rhel",
    "almalinux": "rhel",
    "ol": "rhel",
    "fedora": "fedora",
    "amzn": "amazon",
    "alpine": "alpine",
    "wolfi": "alpine",
    "chainguard": "alpine",
}


@record
class OsInfo:
    """What an image's base OS is, how we know, and which VM-model family it maps to."""

    id: str | None  # os-release ID (lower case), None when there is no OS (scratch)
    version_id: str | None
    pretty_name: str | None
    family: str
    evidence: str  # e.g. "etc/os-release in layer 0", "no os-release in any layer"
    layer_index: int | None = None  # the layer that wrote the evidence (base layers end there)

    def to_json(self) -> dict[str, str | int | None]:
        return {
            "id": self.id,
            "version_id": self.version_id,
            "pretty_name": self.pretty_name,
            "family": self.family,
            "evidence": self.evidence,
            "layer_index": self.layer_index,
        }


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines (values possibly quoted, shell-style) → dict; malformed lines are skipped."""
    import shlex  # (only when an os-release file is read: a cached base OS needs none)

    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        out[key.strip()] = parts[0] if parts else ""
    return out


def _family(fields: Mapping[str, str]) -> str | None:
    ids = [fields.get("ID", "").lower(), *fields.get("ID_LIKE", "").lower().split()]
    for i in ids:
        if i in _FAMILY_BY_ID:
            return _FAMILY_BY_ID[i]
    return None


def identify(
    files: Mapping[str, bytes],
    *,
    present: frozenset[str] = frozenset(),
    config_os: str | None = None,
    layer_index: int | None = None,
    fallback_family: str = "static",
) -> OsInfo:
    """Identify the OS from ``files`` (path → contents of the :data:`OS_FILES` found) and ``present`` paths.

    Windows images (config ``os == "windows"``) need no files.  No recognisable file ⇒ ``fallback_family`` with
    the reason stated in ``evidence``, never silence.
    """
    where = f" in layer {layer_index}" if layer_index is not None else ""
    if config_os == "windows":
        return OsInfo("windows", None, "Windows", "windows-core", "config os is windows", layer_index)
    for path in ("etc/os-release", "usr/lib/os-release"):
        if path in files:
            fields = parse_os_release(files[path].decode("utf-8", "replace"))
            os_id = fields.get("ID", "").lower() or None
            pretty = fields.get("PRETTY_NAME") or fields.get("NAME")
            family = _family(fields)
            if (pretty and "distroless" in pretty.lower()) or any(m in present for m in DISTROLESS_MARKERS):
                family = "debian-minimal" if family in (None, "debian") else family
            if family is None:
                family = fallback_family
                evidence = f"{path}{where} (ID={os_id!s} has no VM profile: {fallback_family} assumed)"
            else:
                evidence = f"{path}{where}"
            return OsInfo(os_id, fields.get("VERSION_ID"), pretty, family, evidence, layer_index)
    if "etc/lsb-release" in files:
        fields = parse_os_release(files["etc/lsb-release"].decode("utf-8", "replace"))
        os_id = fields.get("DISTRIB_ID", "").lower()
        if os_id in _FAMILY_BY_ID:
            return OsInfo(
                os_id,
                fields.get("DISTRIB_RELEASE"),
                fields.get("DISTRIB_DESCRIPTION"),
                _FAMILY_BY_ID[os_id],
                f"etc/lsb-release{where}",
                layer_index,
            )
    if "etc/debian_version" in files:
        text = files["etc/debian_version"].decode("utf-8", "replace").strip()
        major = text.split(".", 1)[0] if is_uint(text[:1]) else None  # "12.5" -> "12"; "trixie/sid" -> None
        pretty = f"Debian GNU/Linux {text}" if text else "Debian GNU/Linux"
        return OsInfo("debian", major, pretty, "debian", f"etc/debian_version{where}", layer_index)
    if "etc/alpine-release" in files:
        version = files["etc/alpine-release"].decode("utf-8", "replace").strip() or None
        return OsInfo(
            "alpine",
            version,
            f"Alpine Linux {version or ''}".strip(),
            "alpine",
            f"etc/alpine-release{where}",
            layer_index,
        )
    for path in ("etc/redhat-release", "etc/system-release"):
        if path in files:
            text = files[path].decode("utf-8", "replace").strip()
            lowered = text.lower()
            if lowered.startswith("amazon linux"):
                return OsInfo("amzn", _release_number(text), text, "amazon", f"{path}{where}", layer_index)
            if lowered.startswith("fedora"):
                return OsInfo("fedora", _release_number(text), text, "fedora", f"{path}{where}", layer_index)
            return OsInfo("rhel", _release_number(text), text or None, "rhel", f"{path}{where}", layer_index)
    return OsInfo(
        None, None, None, fallback_family, f"no os-release in any layer: {fallback_family} assumed", None
    )


def _release_number(text: str) -> str | None:
    """``"Red Hat Enterprise Linux release 9.3 (Plow)"`` → ``"9.3"``."""
    for word in text.split():
        if is_uint(word[:1]):
            return word
    return None
