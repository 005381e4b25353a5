"""The aggregator bot's role: verify revealed deltas, merge the good ones, publish the new model.

A thin program over the core package `dgpt`: it reads the chain, calls the core (verification,
aggregation, store) and writes the chain. Its daemon lands with the end-to-end issue; today the
calls it makes are `dgpt.chain.protocol.Protocol.open_round/publish/slash`, driven by `dgpt demo`.
"""
