"""Mutations of seed bytes, as hypothesis strategies: what the fuzz harness feeds a reader instead of its seeds.

Each operator takes ``draw`` (hypothesis's, so every choice is recorded and shrinks), the bytes so far and the pool
of every seed of the reader (for splicing), and returns new bytes. ``mutated`` applies one to four operators to one
seed, then sometimes repairs what would stop a reader at the door, so a mutation reaches the code behind it: a
PNG's chunk checksums are recomputed, and a safetensors header is mutated as JSON with its length prefix rewritten.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Sequence

from hypothesis import strategies as st

MAX_BYTES = 1 << 16  # a mutated input grows to at most this (or its seed's size, for a run's weights)
PNG = b"\x89PNG\r\n\x1a\n"
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
# values that break range checks, integer widths, float parsing and allocation sizes
NUMBERS = (b"0", b"-1", b"1", b"-0", b"2", b"3", b"0.5", b"1e-320", b"1e309", b"-1e309", b"nan", b"inf", b"-inf",
           b"NaN", b"Infinity", b"255", b"256", b"65535", b"65536", b"2147483647", b"2147483648", b"4294967296",
           b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809", b"18446744073709551616",
           b"1e12", b"100000000", b"99999999999999999999999999", b"1_000", b"0x10", b"1.5e3")
# words that change a type or a meaning: JSON/TOML literals and escapes (a lone surrogate), path tricks, names genlab
# gives meaning to
WORDS = (b"", b"true", b"false", b"null", b"[]", b"{}", b'""', b"[1, 2]", b"nan", b"..", b"/", b"../../..", b"\\",
         b"A" * 300, b"\xe2\x80\xae", b"\xff\xfe", b"\x1b[2J", b"\\ud800", b"\\udfff", b"\\u0000", b"\\n",
         b"gpt", b"vae", b"t5", b"bert", b"ppca", b"gan", b"diffusion", b"image", b"text", b"pairs", b"cuda", b"bf16",
         b"source", b"target", b"family", b"model", b"train", b"data", b"release", b"run_id", b"shape", b"dtype",
         b"F64", b"I8", b"BOOL", b"data_offsets")
BYTES = (b"\x00", b"\xff", b"\n", b"\r", b"\r\n", b'"', b"'", b"[", b"]", b"{", b"}", b"=", b",", b".", b"\\", b"#",
         b"\xc3", b"\xef\xbb\xbf", b"\xe2\x80\xae", b"\t", b"\x1b", b"\x0c", b"\xe2\x80\xa8", b"%s", b"{0}")
INTS32 = (0, 1, 24, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 30000, 100000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)

Op = Callable[[Callable, bytes, Sequence[bytes]], bytes]


def _at(draw, n: int) -> int:
    """A position in 0..n."""
    return draw(st.integers(0, n))


def flip(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = _at(draw, len(data) - 1)
    return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]


def truncate(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    return data[: _at(draw, len(data))]


def insert(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    i = _at(draw, len(data))
    return data[:i] + draw(st.one_of(st.sampled_from(BYTES), st.binary(min_size=1, max_size=16))) + data[i:]


def delete(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    i = _at(draw, len(data))
    j = draw(st.integers(i, min(len(data), i + 64)))
    return data[:i] + data[j:]


def splice(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """The start of this input, then the rest of another seed from some point."""
    other = draw(st.sampled_from(pool))
    return data[: _at(draw, len(data))] + other[_at(draw, len(other)) :]


def repeat(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """A chunk of up to 256 bytes repeated up to 200 times in place (long lines, many rows, deep nesting)."""
    i = _at(draw, len(data))
    j = draw(st.integers(i, min(len(data), i + 256)))
    return data[:j] + data[i:j] * draw(st.integers(1, 199)) + data[j:]


def number(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """One number in the text replaced by an extreme one."""
    found = list(NUMBER.finditer(data))
    if not found:
        return insert(draw, data, pool)
    m = found[draw(st.integers(0, len(found) - 1))]
    value = draw(st.one_of(st.sampled_from(NUMBERS), st.integers(-(2**70), 2**70).map(lambda n: str(n).encode()),
                           st.floats().map(lambda x: repr(x).encode())))
    return data[: m.start()] + value + data[m.end() :]


def word(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """One word (a key, a name, a literal) replaced by another that means something else."""
    found = list(WORD.finditer(data))
    if not found:
        return insert(draw, data, pool)
    m = found[draw(st.integers(0, len(found) - 1))]
    others = [w.group() for w in found[:64]]
    return data[: m.start()] + draw(st.sampled_from(WORDS + tuple(others))) + data[m.end() :]


def lines(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """A whole line deleted, duplicated or moved (rows of a .jsonl/.csv, keys of a TOML section, --set lines)."""
    rows = data.split(b"\n")
    i = draw(st.integers(0, len(rows) - 1))
    action = draw(st.sampled_from(("delete", "duplicate", "move")))
    row = rows.pop(i) if action != "duplicate" else rows[i]
    if action != "delete":
        rows.insert(draw(st.integers(0, len(rows))), row)
    return b"\n".join(rows)


def put_int(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """A 32-bit integer written over four bytes, either byte order (lengths, sizes, offsets in binary headers)."""
    if len(data) < 4:
        return data
    i = _at(draw, len(data) - 4)
    packed = struct.pack(draw(st.sampled_from((">I", "<I"))), draw(st.sampled_from(INTS32)))
    return data[:i] + packed + data[i + 4 :]


def png_size(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """A PNG's width and height set to extreme values, checksum fixed (decompression bombs, zero-size images)."""
    if not data.startswith(PNG) or len(data) < 33:
        return data
    sizes = st.sampled_from((0, 1, 24, 10_000, 20_000, 65_535, 100_000, 0x7FFFFFFF, 0xFFFFFFFF))
    return fix_png(data[:16] + struct.pack(">II", draw(sizes), draw(sizes)) + data[24:])


def safetensors_header(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    """The JSON header of a safetensors file mutated as text (dtypes, shapes, offsets), its length rewritten."""
    if len(data) < 9:
        return data
    n = int.from_bytes(data[:8], "little")
    if not (data[8:9] == b"{" and 8 + n <= len(data)):
        return data
    header = data[8 : 8 + n]
    for _ in range(draw(st.integers(1, 3))):
        header = draw(st.sampled_from((number, word, insert, delete, flip)))(draw, header, pool)
    keep = draw(st.booleans())  # sometimes the old length: a prefix that no longer matches
    return (n if keep else len(header)).to_bytes(8, "little") + header + data[8 + n :]


def random_bytes(draw, data: bytes, pool: Sequence[bytes]) -> bytes:
    return draw(st.binary(max_size=512))


# the simplest first: hypothesis shrinks a choice toward the start of the list
OPS: tuple[Op, ...] = (flip, truncate, number, word, insert, delete, lines, splice, repeat, put_int, png_size,
                       safetensors_header, random_bytes)


def fix_png(data: bytes) -> bytes:
    """Every complete chunk's CRC recomputed, so a mutation inside a chunk is read rather than refused."""
    out, pos = bytearray(data), 8
    while pos + 12 <= len(out):
        length = int.from_bytes(out[pos : pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return bytes(out)


@st.composite
def mutated(draw, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """``seed`` after one to four operators (capped at ``MAX_BYTES`` or the seed's size, whichever is more)."""
    cap, data = max(MAX_BYTES, len(seed)), seed
    for _ in range(draw(st.integers(1, 4))):
        data = draw(st.sampled_from(OPS))(draw, data, pool)[:cap]
    if data.startswith(PNG) and draw(st.booleans()):
        data = fix_png(data)
    return data
