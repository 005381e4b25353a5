"""The oracle operator's role: stake, commit to a private data set, fine-tune on it, submit deltas.

A thin program over the core package `dgpt`: `node.py` reads the chain, calls the core (worker,
store, commitments) and writes the chain, one journaled step at a time; `cli.py` is `dgpt oracle`.
"""
