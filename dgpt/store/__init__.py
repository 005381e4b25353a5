"""Content-addressed storage: every role puts and gets bytes by CID through one `Store` interface.

- `LocalStore`: the embedded default, a directory of blocks; no daemon.
- `KuboStore`: a real IPFS daemon through the Kubo RPC API (Kubo, or js-ipfs in the tests).
Both give the CIDs `ipfs add --cid-version 1 --raw-leaves` gives, and every read is verified
block by block against the requested CID.
"""

from dgpt.store.base import Store, open_store
from dgpt.store.kubo import KuboStore
from dgpt.store.local import LocalStore
from dgpt.store.unixfs import ContentMismatch, ContentTooLarge, FetchTimeout, MalformedContent

__all__ = ["Store", "LocalStore", "KuboStore", "ContentMismatch", "ContentTooLarge", "FetchTimeout", "MalformedContent", "open_store"]
