"""A client for real IPFS daemons through the Kubo RPC API (`POST /api/v0/...`), over httpx.

Uploads stream from the file (a multi-GB delta never sits whole in memory); downloads fetch block
by block (`block/get`) and verify each against its CID, so a lying daemon is caught whatever its
chunking. Connection failures are retried with exponential backoff; a daemon that answers with an
error is not. Works with Kubo and with js-ipfs (which needs `cid-base=base32` for CIDv1 strings
and a content type on every multipart part).
"""

from __future__ import annotations

import io
import json
import time

import httpx
from multiformats import CID

from dgpt.errors import DGPTError
from dgpt.store.base import Store, parse

MAX_BLOCK = 2 << 20  # a UnixFS block is at most 256 KiB of data plus links; refuse anything far larger
RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class IPFSError(DGPTError):
    """The daemon is unreachable or answered with an error."""


class KuboStore(Store):
    def __init__(
        self,
        api_url: str,
        timeout: float = 60.0,
        retries: int | None = None,
        backoff: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        from dgpt.config import retry_policy

        attempts, default_backoff = retry_policy()
        self.retries = attempts - 1 if retries is None else retries
        self.backoff = default_backoff if backoff is None else backoff
        self.client = httpx.Client(
            base_url=self.api_url + "/api/v0", timeout=httpx.Timeout(timeout, connect=5.0), transport=transport
        )

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    def _request(self, path: str, params: dict, files=None, stream: bool = False) -> httpx.Response:
        """POST with retries on connection failures; raise IPFSError on a daemon error."""
        for attempt in range(self.retries + 1):
            try:
                if files is not None:
                    for f in files.values():
                        f[1].seek(0)  # a retried upload starts over
                request = self.client.build_request("POST", path, params=params, files=files)
                response = self.client.send(request, stream=stream)
                break
            except RETRYABLE as exc:
                if attempt == self.retries:
                    raise IPFSError(f"IPFS daemon at {self.api_url} is unreachable: {exc}") from None
                time.sleep(self.backoff * 2**attempt)
            except httpx.TimeoutException as exc:
                raise IPFSError(f"IPFS daemon at {self.api_url} timed out on {path}: {exc}") from None
        if response.status_code != 200:
            body = response.read() if stream else response.content
            response.close()
            try:
                message = json.loads(body).get("Message", body.decode(errors="replace"))
            except ValueError:
                message = body.decode(errors="replace")[:200]
            raise IPFSError(f"IPFS daemon at {self.api_url} refused {path} {params.get('arg', '')}: {message}".rstrip())
        return response

    def version(self) -> str:
        return self._request("/version", {}).json()["Version"]

    def put_stream(self, stream: io.BufferedIOBase, cid_version: int = 1) -> str:
        params = {"cid-version": cid_version, "pin": "true", "progress": "false"}
        if cid_version == 1:
            params.update({"raw-leaves": "true", "cid-base": "base32"})
        response = self._request("/add", params, files={"file": ("blob", stream, "application/octet-stream")})
        last = [line for line in response.text.splitlines() if line.strip()][-1]
        return json.loads(last)["Hash"]

    def get_block(self, cid: CID) -> bytes:
        response = self._request("/block/get", {"arg": str(cid)}, stream=True)
        try:
            data = bytearray()
            for piece in response.iter_bytes():
                data += piece
                if len(data) > MAX_BLOCK:
                    raise IPFSError(f"block {cid} from {self.api_url} is over {MAX_BLOCK} bytes")
            return bytes(data)
        finally:
            response.close()

    def has(self, cid: str) -> bool:
        c = parse(cid)
        try:
            # Lists every block under the root; fails (or times out) when one is missing locally.
            self._request("/refs", {"arg": str(c), "recursive": "true", "unique": "true", "timeout": "5s"})
            self._request("/block/stat", {"arg": str(c), "timeout": "5s"})
        except IPFSError as exc:
            if "unreachable" in str(exc):
                raise
            return False
        return True

    def pin(self, cid: str) -> None:
        self._request("/pin/add", {"arg": str(parse(cid))})
