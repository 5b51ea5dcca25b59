"""``content/tarheader.py``: the direct reading of plain tar headers gives tarfile's answers, and says "ask
tarfile" (``None``) for everything else — checked against :mod:`tarfile` on generated archives of every kind of
entry, in every tar format, cut anywhere and damaged anywhere."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from ociinspect.content import tarheader
from ociinspect.image import sizes


def _tarfile_bound(data: bytes) -> int:
    """The reference: the lower bound walked with tarfile only (what sizes._tar_lower_bound did before)."""
    bound = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            while (member := tf.next()) is not None:
                bound = max(bound, member.offset_data + -(-max(member.size, 0) // 512) * 512)
    except (tarfile.TarError, ValueError, OverflowError, EOFError, UnicodeError, OSError):
        pass
    return bound


KINDS = ["file", "empty", "dir", "symlink", "hardlink", "fifo", "chr", "longname", "v7dir"]
entry = st.tuples(st.sampled_from(KINDS), st.integers(0, 3000), st.integers(1, 180))


def _archive(entries: list[tuple[str, int, int]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for i, (kind, size, name_length) in enumerate(entries):
            long = kind == "longname" and fmt != tarfile.USTAR_FORMAT  # (ustar cannot hold one)
            name = f"e{i}-" + "n" * (name_length if long else min(name_length, 40))
            info = tarfile.TarInfo(name)
            data = None
            if kind in ("file", "longname"):
                info.size, data = size, io.BytesIO(bytes([i % 251]) * size)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "target"
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "e0"
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "v7dir":
                info.type, info.name = tarfile.AREGTYPE, name + "/"
            tf.addfile(info, data)
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(entry, max_size=8),
    st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    st.floats(0, 1),
    st.one_of(st.none(), st.tuples(st.integers(0, 1 << 14), st.integers(0, 255))),
)
def test_the_bound_is_tarfiles_for_any_archive_cut_or_damaged_anywhere(
    entries: list[tuple[str, int, int]], fmt: int, cut: float, damage: tuple[int, int] | None
) -> None:
    data = bytearray(_archive(entries, fmt))
    data = data[: int(len(data) * cut)] if cut < 1 else data
    if damage is not None and data:
        data[damage[0] % len(data)] = damage[1]
    expected = _tarfile_bound(bytes(data))
    direct = tarheader.plain_tar_bound(bytes(data))
    assert direct is None or direct == expected
    assert sizes._tar_lower_bound(bytes(data)) == expected


def test_plain_archives_are_read_without_tarfile_and_the_rest_is_left_to_it() -> None:
    plain = _archive(
        [("file", 700, 5), ("dir", 0, 3), ("symlink", 0, 3), ("longname", 10, 150)], tarfile.GNU_FORMAT
    )
    assert tarheader.plain_tar_bound(plain) == _tarfile_bound(plain) > 0
    pax = _archive(
        [("file", 10, 5), ("longname", 10, 150)], tarfile.PAX_FORMAT
    )  # a PAX header for the long name
    assert tarheader.plain_tar_bound(pax) is None and sizes._tar_lower_bound(pax) == _tarfile_bound(pax) > 0
    big = bytearray(_archive([("file", 0, 5)], tarfile.GNU_FORMAT)[:512])
    big[124:136] = b"\x80" + (5 << 32).to_bytes(11, "big")  # base-256 size: 20 GiB
    big[148:156] = b"%06o\0 " % (sum(big[:148]) + sum(big[156:]) + 256)
    assert tarheader.plain_tar_bound(bytes(big)) is None
    assert sizes._tar_lower_bound(bytes(big)) == 512 + (5 << 32)


def test_number_fields_are_read_as_tarfile_reads_plain_octal() -> None:
    assert tarheader.octal(b"0000644\0") == 0o644
    assert tarheader.octal(b"  644 \0xx") == 0o644
    assert tarheader.octal(b"\0\0\0") == 0
    assert tarheader.octal(b"\x80\0\0\x01") is None  # base-256: tarfile's
    assert tarheader.octal(b"-1\0") is None and tarheader.octal(b"12_3") is None
