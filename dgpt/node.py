"""What the role daemons share: a journal per role, key and deployment, a cache of content
fetched by CID, and the run loop over `tick()`, which does at most one step and says what it did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from eth_account.signers.local import LocalAccount

from dgpt.chain.client import ContractRevert
from dgpt.chain.protocol import Protocol

# Reverts that mean another party settled the proposal first (a challenge, a quorum, someone's
# finalize): the step is moot, not failed.
DECIDED_ELSEWHERE = ("NoLiveProposal", "ChallengeWindowClosed", "AlreadyAttested")


def decided_elsewhere(exc: ContractRevert) -> bool:
    return exc.error in DECIDED_ELSEWHERE
from dgpt.journal import Journal
from dgpt.store import Store


class Action(str, Enum):
    """What one tick did. WAITING and DONE mean nothing can be done now: the loop sleeps."""

    WAITING = "waiting"  # for a round, a deadline or the aggregator
    DONE = "done"  # the aggregator's plan is complete; the oracle's round is settled
    OPENED = "opened"
    PUBLISHED = "published"  # a proposal: final after the challenge window
    FINALIZED = "finalized"
    VOIDED = "voided"
    ABORTED = "aborted"
    ATTESTED = "attested"
    SETTLED = "settled"  # a validator's attestation, once its proposal is decided
    SLASHED = "slashed"
    PREPARED = "prepared"  # the oracle's delta is trained and its commitment journaled
    COMMITTED = "committed"
    REVEALED = "revealed"
    CLAIMED = "claimed"


@dataclass(frozen=True)
class Step:
    action: Action
    round_id: int = 0
    detail: str = ""
    until: int = 0  # a waiting step's deadline (chain time), for the time left in its log line

    @property
    def idle(self) -> bool:
        return self.action in (Action.WAITING, Action.DONE)

    def __str__(self) -> str:
        where = f"round {self.round_id}: " if self.round_id else ""
        return f"{where}{self.action.value}" + (f" ({self.detail})" if self.detail else "")


class Node:
    """Base of the oracle, aggregator and validator daemons."""

    role = "node"

    def __init__(self, protocol: Protocol, store: Store, account: LocalAccount, home: Path, log=print):
        self.protocol, self.store, self.account, self.log = protocol, store, account, log
        # One journal per role, key and deployment: a journal never describes rounds of another protocol.
        self.journal = Journal(Path(home) / f"{self.role}-{account.address}-{protocol.deployment.protocol}.json")
        self.cache = Path(home) / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)

    def tick(self) -> Step:
        raise NotImplementedError

    def finished(self, step: Step) -> bool:
        """Whether the run loop may stop after `step`."""
        return False

    def run(self, poll: float = 2.0) -> None:
        """Tick until finished. What the node waits for is logged when it changes (not every
        poll), so a long wait is never silent, and the last step says why the daemon stops."""
        waiting = None
        while True:
            step = self.tick()
            if self.finished(step):
                self.log(f"{step}: finished")
                return
            if step.idle:
                if str(step) != waiting:
                    waiting = str(step)
                    left = step.until - self.protocol.chain.now() if step.until else 0
                    self.log(waiting + (f": {left} s left" if left > 0 else ""))
                time.sleep(poll)
            else:
                waiting = None


def at(timestamp: int) -> str:
    """A chain deadline as a UTC time, for waiting messages (stable, so a wait is logged once)."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(timestamp))


def timestamped(role: str, address: str):
    """The daemons' log: each line with its UTC time, the role and the key's address."""

    def log(*args) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(stamp, f"{role} {address[:10]}:", *args, flush=True)

    return log
