"""The embedded store and the offline CID builder: Kubo's CIDs exactly, verified reads."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from cli.main import main as dgpt_main
from dgpt.errors import DGPTError
from dgpt.store import ContentMismatch, ContentTooLarge, LocalStore
from dgpt.store import unixfs
from dgpt.store.unixfs import file_cid

# A copy of shared/vectors/ipfs_cids.json: CIDs that Kubo 0.22 and js-ipfs 0.66.1 gave these contents.
VECTORS = json.loads((Path(__file__).parent / "data" / "ipfs_cids.json").read_text())["vectors"]


def content(seed: str, size: int) -> bytes:
    """The vectors' content rule: SHAKE-256 of the seed, `size` bytes."""
    return hashlib.shake_256(seed.encode()).digest(size) if size else b""


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['seed']}-{v['size']}")
def test_every_shared_vector(v):
    data = content(v["seed"], v["size"])
    assert file_cid(io.BytesIO(data), 1).encode() == v["cid_v1_raw_leaves"]
    assert file_cid(io.BytesIO(data), 0).encode() == v["cid_v0"]


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 1, 262_144, 262_145, 3 * 262_144 + 7])
def test_put_then_get_round_trips(tmp_path, version, size):
    store = LocalStore(tmp_path)
    data = content("round-trip", size)
    cid = store.put_bytes(data, version)
    assert cid == file_cid(io.BytesIO(data), version).encode()
    assert store.get_bytes(cid) == data
    assert store.has(cid)


def test_cidv0_and_cidv1_name_the_same_dag_pb_blocks(tmp_path):
    store = LocalStore(tmp_path)
    data = content("v0", 600_000)
    v0 = store.put_bytes(data, 0)
    from dgpt.cid import normalize_cid

    assert store.get_bytes(normalize_cid(v0)) == data  # the dag-pb CIDv1 of the same root


def reference_tree(chunks: list[bytes], version: int) -> str:
    """Non-streaming reference: every level grouped into nodes of MAX_LINKS, bottom-up."""
    builder = unixfs.DagBuilder(version)
    level = []
    for c in chunks:
        leaf = unixfs.DagBuilder(version)
        leaf.add_chunk(c)
        level.append(leaf.levels[0][0])
    while len(level) > 1:
        level = [builder._parent(level[i : i + unixfs.MAX_LINKS]) for i in range(0, len(level), unixfs.MAX_LINKS)]
    return unixfs.cid_object(level[0].cid).encode()


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 4, 8, 9, 10, 27, 28, 30])
def test_streaming_builder_matches_the_balanced_reference_on_deep_trees(monkeypatch, n_chunks):
    # Three links a node and 8-byte chunks make trees three and four levels deep from tiny inputs.
    monkeypatch.setattr(unixfs, "MAX_LINKS", 3)
    data = content("deep", 8 * n_chunks - 3)
    chunks = [data[i : i + 8] for i in range(0, len(data), 8)]
    for version in (0, 1):
        streamed = unixfs.DagBuilder(version)
        for c in chunks:
            streamed.add_chunk(c)
        assert streamed.finish().encode() == reference_tree(chunks, version)


def test_a_corrupt_block_is_detected_and_named(tmp_path):
    store = LocalStore(tmp_path)
    data = content("corrupt", 700_000)  # three leaves and a root
    cid = store.put_bytes(data)
    leaf = sorted(p for p in store.blocks.iterdir() if p.name.startswith("bafkrei"))[0]
    raw = bytearray(leaf.read_bytes())
    raw[100] ^= 0xFF
    leaf.write_bytes(bytes(raw))
    with pytest.raises(ContentMismatch, match=leaf.name):
        store.get_bytes(cid)
    out = tmp_path / "out.bin"
    with pytest.raises(ContentMismatch):
        store.get_file(cid, out)
    assert not out.exists() and not (tmp_path / "out.bin.part").exists()


def test_a_tampered_root_is_detected(tmp_path):
    store = LocalStore(tmp_path)
    cid = store.put_bytes(b"model weights")
    (store.blocks / cid).write_bytes(b"other weights")
    with pytest.raises(ContentMismatch, match=cid):
        store.get_bytes(cid)


def test_missing_content_and_size_cap(tmp_path):
    store = LocalStore(tmp_path)
    absent = file_cid(io.BytesIO(b"never stored")).encode()
    assert not store.has(absent)
    with pytest.raises(DGPTError, match="is not in the store"):
        store.get_bytes(absent)
    with pytest.raises(DGPTError, match="cannot pin"):
        store.pin(absent)
    big = store.put_bytes(content("cap", 600_000))
    with pytest.raises(ContentTooLarge):
        store.get_bytes(big, max_bytes=500_000)
    small = store.put_bytes(content("cap", 1000))
    with pytest.raises(ContentTooLarge):
        store.get_bytes(small, max_bytes=999)
    store.pin(big)
    assert any(store.pins.iterdir())


def test_has_is_false_when_a_child_block_is_missing(tmp_path):
    store = LocalStore(tmp_path)
    cid = store.put_bytes(content("partial", 600_000))
    next(p for p in store.blocks.iterdir() if p.name.startswith("bafkrei")).unlink()
    assert not store.has(cid)


def test_dgpt_cid_prints_only_the_cid(tmp_path, capsys):
    v = next(v for v in VECTORS if v["size"] == 1_048_576)
    path = tmp_path / "f.bin"
    path.write_bytes(content(v["seed"], v["size"]))
    assert dgpt_main(["cid", str(path)]) == 0
    assert capsys.readouterr().out == v["cid_v1_raw_leaves"] + "\n"
    assert dgpt_main(["cid", str(path), "--cid-version", "0"]) == 0
    assert capsys.readouterr().out == v["cid_v0"] + "\n"


def test_dgpt_cid_on_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert dgpt_main(["cid", str(tmp_path / "absent")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "cannot read" in captured.err


# --- DAG bombs (issue 11): bounded fetching whatever the DAG -----------------------------------------


def _put_node(store, links, filesize, blocksizes, data=None):
    from dgpt.store.unixfs import DAG_PB, Link, block_cid, dag_pb_node, unixfs_data

    block = dag_pb_node([Link(c, 1, 1) for c in links], unixfs_data(filesize, data, blocksizes))
    cid = block_cid(block, DAG_PB, 1)
    store._write_block(cid, block)
    return cid


def _put_raw(store, data: bytes):
    from dgpt.store.unixfs import RAW, block_cid

    cid = block_cid(data, RAW, 1)
    store._write_block(cid, data)
    return cid


def test_a_dag_bomb_is_refused_within_its_block_budget(tmp_path):
    """Attack: a root that links the same one-byte leaf 20,000 times (or an empty block), each
    visit counted; and nodes whose declared sizes lie. Each is refused at once, as `dgpt get` too."""
    import time

    from multiformats import CID

    from dgpt.store import MalformedContent

    store = LocalStore(tmp_path / "store")
    leaf = _put_raw(store, b"x")
    bomb = CID.decode(_put_node(store, [leaf] * 20_000, 20_000, [1] * 20_000)).encode("base32")
    t = time.monotonic()
    with pytest.raises(MalformedContent, match="more than 12 blocks"):
        store.get_bytes(bomb)
    assert time.monotonic() - t < 5
    empty = _put_raw(store, b"")
    zeros = CID.decode(_put_node(store, [empty] * 1000, 0, [0] * 1000)).encode("base32")
    with pytest.raises(MalformedContent, match="more than 2 blocks"):  # a file of 0 bytes needs 2 at most
        store.get_bytes(zeros)
    with pytest.raises(MalformedContent, match="adds no bytes"):
        store.get_bytes(CID.decode(_put_node(store, [leaf, empty], 1, [1, 0])).encode("base32"))
    liar = CID.decode(_put_node(store, [leaf, leaf], 10**9, [1, 1])).encode("base32")
    with pytest.raises(MalformedContent, match="not its data plus its children"):
        store.get_bytes(liar)
    wrong_child = CID.decode(_put_node(store, [leaf, leaf], 4, [2, 2])).encode("base32")
    with pytest.raises(MalformedContent, match="where its parent declares 2"):
        store.get_bytes(wrong_child)
    # a chain of nodes adding nothing, deeper than any honest file
    node = leaf
    for _ in range(40):
        node = _put_node(store, [node], 1, [1])
    chain = CID.decode(node).encode("base32")
    with pytest.raises(MalformedContent):
        store.get_bytes(chain)
    assert dgpt_main(["get", bomb, "--home", str(tmp_path)]) == 1
    # an honest file that repeats one leaf (zeros) is fine
    zeros_file = store.put_bytes(bytes(3 * 262_144))
    assert store.get_bytes(zeros_file) == bytes(3 * 262_144)


def test_the_embedded_store_reports_bytes_as_they_go(tmp_path):
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "model.bin"
    src.write_bytes(content("progress", 700_000))
    sent, got = [], []
    cid = store.put_file(src, progress=sent.append)
    assert cid == store.put_file(src) and sum(sent) == 700_000
    store.get_file(cid, tmp_path / "back.bin", progress=got.append)
    assert sum(got) == 700_000 and len(got) == 3  # one per 256 KiB leaf
