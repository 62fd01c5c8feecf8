"""Minimal deterministic tar encoding and a fast sequential tar parser.

Shards are plain POSIX (USTAR) tar files.  Every member is a regular file with
mode 0o444, uid/gid 0, empty user/group names and mtime 0, so the bytes of a
shard depend only on the member names and contents.  Names longer than the
100-byte USTAR name field get a PAX extended header (``path`` record); sizes
that do not fit the 11-digit octal field get a PAX ``size`` record.

The parser works on a buffer (``bytes`` or ``mmap``) holding a whole tar
file and yields member names with payload offsets, without copying payloads.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Iterator
from typing import Union

from humanbench.errors import HumanbenchError

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)
_ZERO_BLOCK = bytes(BLOCK)
_MAX_OCTAL_SIZE = 8**11 - 1
_MODE = 0o444
_PAX_NAME = b"././@PaxHeader"

#: A whole tar file in memory; slicing either yields ``bytes``.
Buffer = Union[bytes, mmap.mmap]


class ShardError(HumanbenchError):
    """A shard (or shard folder) is missing, truncated or corrupted.

    ``shard`` names the shard file and ``member`` the tar member
    (``key.field``) where reading broke, when known.
    """

    def __init__(self, shard: str | None, member: str | None, message: str) -> None:
        self.shard = shard
        self.member = member
        self.message = message
        where = []
        if shard is not None:
            where.append(f"shard {shard}")
        if member is not None:
            where.append(f"member {member}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


def _padding(size: int) -> int:
    return -size % BLOCK


def _octal(value: int, width: int) -> bytes:
    """Zero-padded octal digits followed by a NUL, ``width`` bytes in all."""
    return b"%0*o\0" % (width - 1, value)


def _header(name: bytes, size: int, typeflag: bytes) -> bytes:
    """One 512-byte USTAR header block with fixed, deterministic metadata."""
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = _octal(_MODE, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[329:337] = _octal(0, 8)
    block[337:345] = _octal(0, 8)
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _pax_record(keyword: str, value: str) -> bytes:
    body = f" {keyword}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def member_header(name: str, size: int) -> bytes:
    """Header block(s) for a regular-file member; PAX records only when needed."""
    raw = name.encode("utf-8")
    records = b""
    if len(raw) > 100:
        records += _pax_record("path", name)
    if size > _MAX_OCTAL_SIZE:
        records += _pax_record("size", str(size))
    if not records:
        return _header(raw, size, b"0")
    pax = _header(_PAX_NAME, len(records), b"x") + records + bytes(_padding(len(records)))
    return pax + _header(raw[:100], min(size, _MAX_OCTAL_SIZE), b"0")


def padding_for(size: int) -> bytes:
    """Zero bytes that pad a payload of ``size`` bytes to a block boundary."""
    return bytes(_padding(size))


def _parse_octal(field: bytes) -> int:
    digits = field.rstrip(b"\0 ").lstrip(b" ")
    return int(digits, 8) if digits else 0


def _checksum_ok(header: bytes) -> bool:
    """Whether the stored header checksum matches the byte sum (chksum field counted as spaces).

    Uses the byte sum modulo 65521 that ``zlib.adler32`` computes in C (Python's
    ``sum`` over 512 bytes costs ~10x more).  Any single corrupted byte changes
    the sum by less than 256, so it is always caught.
    """
    stored = _parse_octal(header[148:156])
    total = (zlib.adler32(header) & 0xFFFF) - 1 - sum(header[148:156]) + 8 * 32
    return (stored - total) % 65521 == 0


def _parse_pax(records: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(records):
        space = records.index(b" ", pos)
        length = int(records[pos:space])
        keyword, _, value = records[space + 1 : pos + length - 1].partition(b"=")
        out[keyword.decode()] = value.decode("utf-8")
        pos += length
    return out


def iter_members(buf: Buffer, shard: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(name, payload_offset, size)`` for each regular file in a tar buffer.

    Raises :class:`ShardError` naming ``shard`` and the member on a bad header
    checksum, a payload running past the end of the buffer, an unsupported
    member type or a missing end-of-archive marker.
    """
    end = len(buf)
    offset = 0
    last = None
    pax: dict[str, str] = {}
    while True:
        if offset + BLOCK > end:
            raise ShardError(shard, last, f"truncated: no end-of-archive marker at byte {offset}")
        header = buf[offset : offset + BLOCK]
        if header == _ZERO_BLOCK:
            return
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        try:
            if not _checksum_ok(header):
                raise ShardError(shard, name, f"bad header checksum at byte {offset}")
            size = _parse_octal(header[124:136])
        except ValueError:
            raise ShardError(shard, name, f"unreadable header at byte {offset}") from None
        if header[345] and header[257:262] == b"ustar":
            name = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace") + "/" + name
        typeflag = header[156]
        if pax:
            name = pax.get("path", name)
            size = int(pax.get("size", size))
        start = offset + BLOCK
        if start + size > end:
            raise ShardError(shard, name, f"truncated: payload of {size} bytes runs past end of file")
        offset = start + size + (-size % BLOCK)
        if typeflag == 0x30 or typeflag == 0:  # "0" or NUL: regular file
            pax = {}
            last = name
            yield name, start, size
        elif typeflag == 0x78:  # "x": PAX extended header for the next member
            try:
                pax = _parse_pax(buf[start : start + size])
            except (ValueError, UnicodeDecodeError):
                raise ShardError(shard, name, f"unreadable PAX header at byte {start}") from None
        elif typeflag == 0x35 or typeflag == 0x67:  # "5" directory, "g" global PAX header
            pax = {}
        else:
            raise ShardError(shard, name, f"unsupported tar member type {chr(typeflag)!r}")


def split_name(name: str) -> tuple[str, str]:
    """Split a member name into ``(key, field)`` at the first dot of its basename."""
    dot = name.find(".", name.rfind("/") + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def iter_samples(
    buf: Buffer, shard: str, start: int = 0, stop: int | None = None
) -> Iterator[dict[str, object]]:
    """Yield encoded samples ``{"__key__": key, field: bytes}`` with index in ``[start, stop)``.

    Consecutive members sharing a key form one sample.  Samples before
    ``start`` are walked over by header only (payloads are never copied);
    parsing ends as soon as sample ``stop`` begins.  Raises
    :class:`ShardError` if the shard holds fewer than ``stop`` samples.
    """
    index = -1
    key = None
    sample: dict[str, object] | None = None
    for name, offset, size in iter_members(buf, shard):
        dot = name.find(".", name.rfind("/") + 1)
        member_key, field = (name[:dot], name[dot + 1 :]) if dot >= 0 else (name, "")
        if member_key != key:
            if sample is not None:
                yield sample
            index += 1
            key = member_key
            if stop is not None and index >= stop:
                return
            sample = {"__key__": key} if index >= start else None
        if not field:
            raise ShardError(shard, name, "member name has no field suffix")
        if sample is not None:
            if field in sample:
                raise ShardError(shard, name, "duplicate field in sample")
            sample[field] = buf[offset : offset + size]
    if sample is not None:
        yield sample
    if stop is not None and index + 1 < stop:
        raise ShardError(shard, None, f"holds {index + 1} samples, expected at least {stop}")
