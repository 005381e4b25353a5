"""The main job on embedded defaults: deploy the protocol and drive one round with oracles.

For now the round's contents (dataset manifest, weight delta, merged model, report) are small JSON
documents put in the content-addressed store; the training worker and the roles replace them as
they land.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import TOKEN, deploy
from dgpt.commitments import RewardsTree, commit_hash
from dgpt.config import Settings
from dgpt.store import Store, open_store

COMMIT_S = REVEAL_S = 600


@dataclass
class DemoResult:
    chain: str
    store: str
    rounds: list[dict] = field(default_factory=list)
    rewards: dict[str, str] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"rounds": self.rounds, "rewards": self.rewards, "chain": self.chain, "store": self.store, "gas": self.gas}


def run_demo(settings: Settings = Settings(), num_oracles: int = 4, log=print) -> DemoResult:
    chain = Chain.connect(settings.rpc_url) if settings.rpc_url else Chain.embedded()
    store = open_store(settings.ipfs_api, settings.store_dir)

    def document(**fields) -> tuple[bytes, str]:
        """Canonical JSON bytes, put in the store; returns them with their CID."""
        data = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return data, store.put_bytes(data)

    accounts = dev_accounts(2 + num_oracles)
    admin, aggregator, oracles = accounts[0], accounts[1], accounts[2 : 2 + num_oracles]
    t0 = time.monotonic()
    protocol = deploy(chain, admin, aggregator.address)
    log(f"deployed token {protocol.deployment.token} and protocol {protocol.deployment.protocol} on {chain.name}")
    result = DemoResult(chain=chain.name, store=repr(store))
    stake = protocol.min_stake()

    for i, o in enumerate(oracles):
        protocol.mint(admin, o.address, 2 * stake)
        _, manifest = document(kind="dataset-manifest", oracle=o.address, examples=100 + i)
        r = protocol.register(o, stake, manifest, secrets.token_bytes(32), 100 + i)
        result.gas.setdefault("register", r["gasUsed"])
        log(f"oracle {o.address} registered: stake {stake // TOKEN} DGPT, dataset {manifest}")

    _, base = document(kind="model", name="genesis")
    _, spec = document(kind="task-spec", phase="finetune", labels=["rotten", "fresh"], lam=0.5)
    rid = protocol.open_round(aggregator, base, spec, COMMIT_S, REVEAL_S, 100 * TOKEN)
    log(f"round {rid} opened on model {base}")

    reveals = {}
    for o in oracles:
        _, delta = document(kind="delta", round=rid, oracle=o.address)
        salt = secrets.token_bytes(32)
        n = 50
        r = protocol.commit(o, rid, commit_hash(rid, o.address, delta, salt, n))
        result.gas.setdefault("commit", r["gasUsed"])
        reveals[o.address] = (o, delta, salt, n)
    log(f"{len(oracles)} oracles committed; waiting out the commit deadline")
    chain.time_travel(COMMIT_S + 1)
    for o, delta, salt, n in reveals.values():
        r = protocol.reveal(o, rid, delta, salt, n)
        result.gas.setdefault("reveal", r["gasUsed"])
    log(f"{len(oracles)} oracles revealed their deltas; waiting out the reveal deadline")
    chain.time_travel(REVEAL_S)

    rewards = {a: 25 * TOKEN for a in reveals}
    tree = RewardsTree.build(rewards)
    _, model = document(kind="model", name=f"round-{rid}", parents=sorted(d for _, d, _, _ in reveals.values()))
    _, report = document(kind="report", round=rid, accepted=sorted(reveals), rewards=tree.to_json())
    r = protocol.publish(aggregator, rid, model, report, tree.root, tree.total)
    result.gas["publish"] = r["gasUsed"]
    log(f"round {rid} published: model {model}, report {report}")

    for o in oracles:
        i = tree.index_of(o.address)
        r = protocol.claim(o, rid, i, tree.amounts[i], tree.proof(i))
        result.gas.setdefault("claim", r["gasUsed"])
        result.rewards[o.address] = str(tree.amounts[i])
        log(f"oracle {o.address} claimed {tree.amounts[i] / TOKEN:g} DGPT")

    info = protocol.round(rid)
    result.rounds.append(
        {"round": rid, "phase": "finetune", "model_cid": info.new_model_cid, "report_cid": info.report_cid}
    )
    log(f"done in {time.monotonic() - t0:.1f} s")
    return result
