"""UnixFS files as Kubo builds them, computed offline: the CIDs `ipfs add` prints, block by block.

Layout of `ipfs add` with the default chunker (size-262144) and the balanced builder:
- the file is cut into 262144-byte chunks; a file of one chunk (or none) is a single block;
- parents are dag-pb nodes of at most 174 links, built bottom-up, each level full from the left;
- CIDv1 (`--cid-version 1 --raw-leaves`): leaves are raw blocks (codec 0x55);
  CIDv0: leaves are dag-pb nodes holding a UnixFS File with the chunk as Data.
In dag-pb, PBNode's Links (field 2) come before its Data (field 1); each PBLink is Hash, an empty
Name, then Tsize (the child's block size plus all its descendants'). A parent's UnixFS Data is
Type=File, filesize, and one blocksize (bytes of file content) per child.

Reading walks the DAG from its root and checks every block against the hash in its CID, so
content from any source (disk, a daemon) is verified whatever chunking built it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator

from multiformats import CID

from dgpt.errors import DGPTError

CHUNK_SIZE = 262_144
MAX_LINKS = 174
RAW, DAG_PB = 0x55, 0x70
UNIXFS_FILE, UNIXFS_RAW = 2, 0


class ContentMismatch(DGPTError):
    """A block's bytes do not hash to the CID it was fetched by: corrupt or tampered content."""


class MalformedContent(DGPTError):
    """Bytes that match their CID but are no well-formed file: anyone who fetches them can see it."""


class FetchTimeout(DGPTError):
    """Content not fetched within its time budget: nothing is proved (the network may be slow)."""


class ContentTooLarge(DGPTError):
    """Content is larger than the caller allowed."""


# --- protobuf, the few wire types dag-pb and UnixFS use ------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _field_bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varints, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


# --- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    cid: bytes  # binary CID (multiformats' CID objects validate every call: too slow per chunk)
    tsize: int  # encoded bytes of the child block and all its descendants
    filesize: int  # bytes of file content under the child


def unixfs_data(filesize: int, data: bytes | None = None, blocksizes: Iterable[int] = ()) -> bytes:
    out = _field_varint(1, UNIXFS_FILE)
    if data:
        out += _field_bytes(2, data)
    out += _field_varint(3, filesize)
    for size in blocksizes:
        out += _field_varint(4, size)
    return out


def dag_pb_node(links: list[Link], data: bytes) -> bytes:
    out = b""
    for link in links:
        out += _field_bytes(2, _field_bytes(1, link.cid) + _field_bytes(2, b"") + _field_varint(3, link.tsize))
    return out + _field_bytes(1, data)


SHA256_PREFIX = b"\x12\x20"  # multihash: sha2-256, 32 bytes


def block_cid(block: bytes, codec: int, version: int) -> bytes:
    """Binary CID of a block: the bare multihash for v0, 0x01 codec multihash for v1."""
    mh = SHA256_PREFIX + hashlib.sha256(block).digest()
    return mh if version == 0 else bytes([1, codec]) + mh


def cid_object(binary: bytes) -> CID:
    """A CID object from binary, in the base IPFS tools print (base58 for v0, base32 for v1)."""
    c = CID.decode(binary)
    return c.set(base="base32") if c.version == 1 else c


class DagBuilder:
    """Builds a file's DAG from its chunks as they stream in; `emit(cid, block)` receives every block
    (the CID in binary form).

    Memory holds one chunk plus at most 174 links per tree level, whatever the file size.
    """

    def __init__(self, cid_version: int = 1, emit: Callable[[bytes, bytes], None] | None = None):
        if cid_version not in (0, 1):
            raise ValueError(f"CID version must be 0 or 1, got {cid_version}")
        self.version = cid_version
        self.emit = emit or (lambda cid, block: None)
        self.levels: list[list[Link]] = [[]]
        self.size = 0

    def _block(self, block: bytes, codec: int, filesize: int, tsize_below: int) -> Link:
        cid = block_cid(block, codec, self.version)
        self.emit(cid, block)
        return Link(cid, len(block) + tsize_below, filesize)

    def add_chunk(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.version == 1:
            link = self._block(chunk, RAW, len(chunk), 0)
        else:
            link = self._block(dag_pb_node([], unixfs_data(len(chunk), chunk)), DAG_PB, len(chunk), 0)
        self._push(0, link)

    def _push(self, level: int, link: Link) -> None:
        if level == len(self.levels):
            self.levels.append([])
        self.levels[level].append(link)
        if len(self.levels[level]) == MAX_LINKS:
            self._push(level + 1, self._parent(self.levels[level]))
            self.levels[level] = []

    def _parent(self, links: list[Link]) -> Link:
        filesize = sum(l.filesize for l in links)
        node = dag_pb_node(links, unixfs_data(filesize, None, [l.filesize for l in links]))
        return self._block(node, DAG_PB, filesize, sum(l.tsize for l in links))

    def finish(self) -> CID:
        """Close the tree and return the root CID."""
        if self.size == 0 and not any(self.levels):
            self.add_chunk(b"")  # the empty file is one empty leaf
        level = 0
        while True:
            pending = self.levels[level]
            if len(pending) == 1 and not any(self.levels[level + 1 :]):
                return cid_object(pending[0].cid)
            if pending:
                self.levels[level] = []
                self._push(level + 1, self._parent(pending))
            level += 1


def chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Fixed-size chunks as Kubo's size splitter cuts them (short reads are filled up)."""
    while True:
        chunk = stream.read(size)
        while chunk and len(chunk) < size:
            more = stream.read(size - len(chunk))
            if not more:
                break
            chunk += more
        if not chunk:
            return
        yield chunk


def file_cid(stream: BinaryIO, cid_version: int = 1, emit: Callable[[bytes, bytes], None] | None = None) -> CID:
    """The CID `ipfs add` gives the stream's bytes (v1: `--cid-version 1 --raw-leaves`)."""
    builder = DagBuilder(cid_version, emit)
    for chunk in chunks(stream):
        builder.add_chunk(chunk)
    return builder.finish()


# --- reading ----------------------------------------------------------------------------------


def verify_block(cid: CID, block: bytes) -> None:
    if cid.hashfun.name != "sha2-256":
        raise DGPTError(f"CID {cid} uses {cid.hashfun.name}; only sha2-256 is supported")
    if hashlib.sha256(block).digest() != cid.raw_digest:
        raise ContentMismatch(f"content for {cid} does not match its hash: corrupt or tampered block")


def decode_node(block: bytes, cid: CID) -> tuple[list[bytes], bytes | None, int | None, list[int]]:
    """(binary child CIDs, inline file data, declared file size, declared child sizes) of a dag-pb
    UnixFS node. The children stay binary: decoding each into a CID object is slow, so callers
    first check how many there are."""
    links: list[bytes] = []
    blocksizes: list[int] = []
    unixfs = b""
    try:
        for field, value in _fields(block):
            if field == 2:
                for f, v in _fields(value):
                    if f == 1:
                        links.append(bytes(v))
            elif field == 1:
                unixfs = value
        kind = data = filesize = None
        for field, value in _fields(unixfs):
            if field == 1:
                kind = value
            elif field == 2:
                data = value
            elif field == 3:
                filesize = value
            elif field == 4:  # repeated uint64: one varint each, or packed
                if isinstance(value, int):
                    blocksizes.append(value)
                else:
                    pos = 0
                    while pos < len(value):
                        size, pos = _read_varint(value, pos)
                        blocksizes.append(size)
    except (ValueError, KeyError) as exc:
        raise MalformedContent(f"block {cid} is not a valid UnixFS node: {exc}") from None
    if kind not in (UNIXFS_FILE, UNIXFS_RAW):
        raise MalformedContent(f"{cid} is a UnixFS node of type {kind}, not a file")
    return links, data, filesize, blocksizes


# A file's DAG may hold at most two blocks per 4 KiB it declares (plus two): `ipfs add` cuts
# 256 KiB chunks, so honest files need about 1/128 of it; a DAG bomb (one empty block linked
# thousands of times) needs far more blocks than its bytes.
BYTES_PER_BLOCK = 4096
# Deeper than any honest file: a balanced DAG of 174-link nodes is 4 levels deep at 10^12 bytes.
MAX_DEPTH = 32


def max_blocks(declared_size: int) -> int:
    return 2 * (-(-declared_size // BYTES_PER_BLOCK)) + 2


def iter_file(
    cid: CID | str, get_block: Callable[[CID], bytes], max_bytes: int | None = None, deadline: float | None = None
) -> Iterator[bytes]:
    """Stream a UnixFS file's bytes, verifying every block against its CID; stop past `max_bytes`.

    Bounded whatever the DAG: every block visited counts each time it is visited (a repeated child
    is legitimate, a file of zeros repeats one leaf, but it is not free), at most `max_blocks` of
    the root's declared size; every node's declared size must equal its data plus its children's
    declared sizes, every child must add bytes, and the DAG is at most MAX_DEPTH deep, so the
    declared size bounds the work. Past `deadline` (time.monotonic()) the fetch stops.
    """
    root = CID.decode(cid) if isinstance(cid, str) else cid
    sent = visited = 0
    limit = 1  # the root alone, until it declares its size
    stack: list[tuple[CID, int | None, int]] = [(root, None, 0)]  # (block, the size its parent declared, depth)
    while stack:
        if deadline is not None and time.monotonic() > deadline:
            raise FetchTimeout(f"{root}: not fetched within its time budget ({visited} blocks so far)")
        c, expected, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedContent(f"{root}: deeper than {MAX_DEPTH} levels")
        visited += 1
        if visited > limit:
            raise MalformedContent(f"{root}: more than {limit} blocks, more than a file of its declared size needs")
        block = get_block(c)
        verify_block(c, block)
        if c.codec.code == RAW:
            pieces, children, size = [block], [], len(block)
        elif c.codec.code == DAG_PB:
            children, data, filesize, blocksizes = decode_node(block, c)
            data = data or b""
            size = filesize if filesize is not None else len(data)
            if c == root:
                limit = max_blocks(size)
            if visited + len(children) > limit:
                raise MalformedContent(f"{root}: more than {limit} blocks, more than a file of its declared size needs")
            if children and (len(blocksizes) != len(children) or size != len(data) + sum(blocksizes)):
                raise MalformedContent(f"{c} declares {size} bytes, not its data plus its children's {blocksizes}")
            if not children and size != len(data):
                raise MalformedContent(f"{c} declares {size} bytes but holds {len(data)}")
            if any(b == 0 for b in blocksizes):
                raise MalformedContent(f"{c} links a child that adds no bytes")
            pieces = [data] if data else []
            try:
                children = [(cid_object(child), b, depth + 1) for child, b in zip(children, blocksizes)]
            except (ValueError, KeyError) as exc:
                raise MalformedContent(f"{c} links an invalid CID: {exc}") from None
        else:
            raise MalformedContent(f"{c} has codec {c.codec.name}; a file is raw or dag-pb blocks")
        if expected is not None and size != expected:
            raise MalformedContent(f"{c} holds {size} bytes where its parent declares {expected}")
        if c == root:
            if max_bytes is not None and size > max_bytes:
                raise ContentTooLarge(f"{root} declares {size} bytes, over the limit of {max_bytes}")
            limit = max_blocks(size)
        elif not size:
            raise MalformedContent(f"{c} adds no bytes")
        for piece in pieces:
            sent += len(piece)
            if max_bytes is not None and sent > max_bytes:
                raise ContentTooLarge(f"{root} is over the limit of {max_bytes} bytes")
            yield piece
        stack.extend(reversed(children))
