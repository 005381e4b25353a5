#!/usr/bin/env bash
# Foundry invariant fuzzing of the contracts (tests/foundry): random call sequences from oracles,
# the aggregator and a stranger; foundry.toml sets 10,000 sequences of 20 calls. Extra arguments go
# to `forge test`, e.g. `--fuzz-seed 1` or `-vv`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node_modules/@foundry-rs/forge-linux-amd64/bin/forge test --offline "$@"
