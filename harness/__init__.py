"""The harness around the protocol: the demo (one process, or the roles as OS processes), the
Byzantine simulator, and the helper that starts local services (Anvil, Hardhat, js-ipfs).

It drives the roles (`oracle`, `aggregator`) and the core (`dgpt`); neither of those imports it.
"""
