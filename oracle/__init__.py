"""The oracle operator's role: stake, commit to a private data set, fine-tune on it, submit deltas.

A thin program over the core package `dgpt`: it reads the chain, calls the core (worker, store,
commitments) and writes the chain. Its daemon and commands land with the end-to-end issue; today the
calls it makes are `dgpt.chain.protocol.Protocol.register/commit/reveal/claim`, driven by `dgpt demo`.
"""
