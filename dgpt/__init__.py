"""DGPT core: what the oracle and the aggregator roles share.

The maths (objective, deltas, aggregation, CIDs, commitments) are pure functions here; the roles
in `oracle/` and `aggregator/` read the chain, call this package and write the chain.
"""

__version__ = "0.1.0"
