"""The validator role: recompute every proposed round and attest on chain to the result's hash."""
