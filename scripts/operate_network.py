"""Run the README's "Operating a network" block exactly as written, in an empty directory.

    .venv/bin/python scripts/operate_network.py [--dir DIR] [--timeout SECONDS] [--json]

The block is the fenced bash between `<!-- operate-network:begin -->` and `<!-- ... end -->`. It
runs under `bash -e` with `.venv/bin` first on PATH, in its own process group, so every service and
role it starts is stopped on the way out, even on failure or timeout. Nothing else is done to the
chain: no block is mined and no clock is moved but by the block's own commands. If 8545 or 5001 is
taken on this machine, the block's ports are swapped for free ones (and that is said).

Prints the block's transcript (stdout and stderr) and the time; `--json` ends with one line:
{"ok": bool, "seconds": s, "dir": DIR, "ports": {...}, "stdout": "..."}. Exit 0 when the block
succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.localnet import free_port, port_is_free  # noqa: E402

BEGIN, END = "<!-- operate-network:begin -->", "<!-- operate-network:end -->"
PORTS = (8545, 5001)  # the chain's and the IPFS API's, as the README writes them


def readme_block(readme: Path = ROOT / "README.md") -> str:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block")
    section = text[text.index(BEGIN) + len(BEGIN): text.index(END)]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    if not m:
        raise SystemExit(f"{readme}: the operate-network block holds no ```bash fence")
    return m.group(1)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the block's process group (dgpt localnet stops its services on it), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def run(workdir: Path, timeout: float) -> dict:
    script = readme_block()
    ports = {p: p if port_is_free(p) else free_port() for p in PORTS}
    for old, new in ports.items():
        if old != new:
            print(f"port {old} is taken here: the block runs with {new} instead", file=sys.stderr)
            script = re.sub(rf"\b{old}\b", str(new), script)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    env.pop("DGPT_CONFIG", None)
    env.pop("DGPT_HOME", None)
    t0 = time.monotonic()
    # The transcript goes to a file, not a pipe: a background service the block failed to stop
    # would hold a pipe open and hang the reader.
    transcript = workdir / "transcript.txt"
    with open(transcript, "w") as sink:
        proc = subprocess.Popen(["bash", "-e", "-c", script], cwd=workdir, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            ok, tail = proc.returncode == 0, "" if proc.returncode == 0 else f"[operate_network: the block exited with status {proc.returncode}]\n"
        except subprocess.TimeoutExpired:
            ok, tail = False, f"[operate_network: timed out after {timeout:.0f} s]\n"
        finally:
            stop_group(proc)  # whatever the block left running
    out = transcript.read_text() + tail
    return {"ok": ok, "seconds": round(time.monotonic() - t0, 1), "dir": str(workdir),
            "ports": {str(k): v for k, v in ports.items()}, "stdout": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="where to run (default: a new temporary directory)")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="dgpt-network-"))
    result = run(workdir, args.timeout)
    print(result["stdout"], end="")
    print(f"\n{'ok' if result['ok'] else 'FAILED'}: the README's network block in {result['seconds']:.0f} s ({workdir})")
    if args.json:
        print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
