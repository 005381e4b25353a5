"""The store against a real IPFS daemon (js-ipfs from npm, offline, on loopback ports)."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from harness import localnet
from dgpt.store import ContentMismatch, ContentTooLarge, KuboStore, LocalStore
from dgpt.store.kubo import IPFSError

SIZES = [0, 1, 1000, 262_144, 262_145, 1_500_000]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with localnet.ipfs_daemon(tmp_path_factory.mktemp("jsipfs")) as url:
        yield KuboStore(url)


@pytest.mark.ipfs
@pytest.mark.parametrize("size", SIZES)
def test_daemon_and_embedded_store_agree_on_cids(daemon, tmp_path, size):
    data = os.urandom(size)
    local = LocalStore(tmp_path)
    for version in (0, 1):
        ours = local.put_bytes(data, version)
        theirs = daemon.put_bytes(data, version)
        assert theirs == ours
        # what one put, the other serves by the same CID
        assert daemon.get_bytes(ours) == data
        assert local.get_bytes(theirs) == data


@pytest.mark.ipfs
def test_streaming_upload_of_a_file_and_pin(daemon, tmp_path):
    path = tmp_path / "delta.safetensors"
    path.write_bytes(os.urandom(2_000_000))
    cid = daemon.put_file(path)
    assert cid == LocalStore(tmp_path / "s").put_file(path)
    daemon.pin(cid)
    assert daemon.has(cid)
    out = tmp_path / "back.bin"
    daemon.get_file(cid, out)
    assert out.read_bytes() == path.read_bytes()
    with pytest.raises(ContentTooLarge):
        daemon.get_bytes(cid, max_bytes=1_000_000)


@pytest.mark.ipfs
def test_daemon_does_not_have_what_nobody_added(daemon, tmp_path):
    assert not daemon.has(LocalStore(tmp_path).put_bytes(os.urandom(64)))


def test_unreachable_daemon_is_a_clear_error():
    store = KuboStore(f"http://127.0.0.1:{localnet.free_port()}", retries=1, backoff=0.01)
    with pytest.raises(IPFSError, match="is unreachable"):
        store.put_bytes(b"x")


def test_connection_errors_are_retried_with_backoff():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"Version": "0.18.1"})

    store = KuboStore("http://ipfs.test", backoff=0.001, transport=httpx.MockTransport(handler))
    assert store.version() == "0.18.1"
    assert len(calls) == 3


def test_a_lying_daemon_is_caught(tmp_path):
    """A daemon that serves other bytes for a block fails verification, naming the CID."""
    honest = LocalStore(tmp_path)
    cid = honest.put_bytes(os.urandom(700_000))

    def handler(request: httpx.Request) -> httpx.Response:
        from multiformats import CID

        block = honest.get_block(CID.decode(request.url.params["arg"]))
        if not block.startswith(b"\x12"):  # tamper with the leaves, serve the root honestly
            block = bytes([block[0] ^ 1]) + block[1:]
        return httpx.Response(200, content=block)

    liar = KuboStore("http://ipfs.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ContentMismatch, match="does not match its hash"):
        liar.get_bytes(cid)


def test_daemon_errors_are_reported_with_its_message():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"Message": "invalid path", "Code": 0, "Type": "error"})

    store = KuboStore("http://ipfs.test", transport=httpx.MockTransport(handler))
    with pytest.raises(IPFSError, match="invalid path"):
        store.pin("bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba")


@pytest.mark.ipfs
def test_uploads_and_downloads_report_their_bytes(daemon, tmp_path):
    """What the CLI's byte bars and the daemons' transfer lines are fed: every byte, once."""
    src = tmp_path / "delta.bin"
    src.write_bytes(os.urandom(1_300_000))
    sent, got = [], []
    cid = daemon.put_file(src, progress=sent.append)
    assert sum(sent) == src.stat().st_size and all(n > 0 for n in sent)
    daemon.get_file(cid, tmp_path / "back.bin", progress=got.append)
    assert sum(got) == src.stat().st_size and len(got) > 1  # streamed in pieces, not at the end
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_a_retried_upload_counts_its_bytes_once(tmp_path):
    """The first attempt's connection drops after the body was read; the retry starts over, and
    the progress it reports nets to the file's size, not twice it."""
    src = tmp_path / "delta.bin"
    src.write_bytes(os.urandom(300_000))
    cid = LocalStore(tmp_path / "ref").put_file(src)
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        attempts.append(len(body))
        if len(attempts) == 1:
            raise httpx.ConnectError("dropped", request=request)
        return httpx.Response(200, text=json.dumps({"Name": "blob", "Hash": cid, "Size": "300000"}) + "\n")

    sent = []
    store = KuboStore("http://ipfs.test", backoff=0.001, transport=httpx.MockTransport(handler))
    assert store.put_file(src, progress=sent.append) == cid
    assert len(attempts) == 2 and attempts[0] == attempts[1] > 300_000  # the whole multipart body, twice
    assert sum(sent) == 300_000 and min(sent) < 0  # the rewind was reported
