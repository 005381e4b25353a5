"""The aggregator bot's role: verify revealed deltas, merge the good ones, publish the new model.

A thin program over the core package `dgpt`: `round.py` checks, scores and merges one round with
the core's functions; `node.py` is the journaled daemon that opens rounds, publishes and slashes;
`cli.py` is `dgpt aggregator`.
"""
