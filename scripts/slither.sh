#!/usr/bin/env bash
# Static analysis of the contracts with Slither, compiling through forge with the offline solcjs
# (foundry.toml). OpenZeppelin and the Foundry test harness are filtered out. Extra arguments go to
# slither, e.g. `--json report.json` or `--exclude-low`. Triage of the findings: contracts/SLITHER.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/@foundry-rs/forge-linux-amd64/bin:$PATH"
exec .venv-slither/bin/slither . --foundry-compile-all --filter-paths "node_modules|tests/foundry" "$@"
