"""Byzantine oracles in full rounds: N oracles of which f cheat, each cheater with one attack.

Every run is a real protocol run on a fresh embedded chain: the oracles and the aggregator are the
real roles (`oracle.node`, `aggregator.node`); a cheater is an `OracleNode` whose delta (or reveal)
is replaced by its attack. After the rounds the published model is evaluated on the held-out test
set, and the run reports what each cheater earned and whether it was slashed.

A plan may start with pre-training rounds (`new_network`: the bare model, as a network starts):
the cheaters do honest L1 work there and attack the fine-tuning rounds.

Deterministic computations are memoised by content, so that a table of many runs stays affordable
on a CPU: an oracle's training is keyed by (base model CID, task spec CID, dataset root) and the
aggregator's validation metrics by the digest of the evaluated weights. Training and evaluation are
seeded and deterministic on the CPU, so a memoised result is bit-identical to a recomputed one.

Attacks (the cheater's submission in every round):
- sign_flip: the negated honest delta;  scale: the honest delta times 1000;
- noise: Gaussian noise with the honest delta's norm;  non_finite: honest, with a NaN and an Inf;
- wrong_names / wrong_shapes / wrong_dtypes: one tensor renamed, truncated, or every tensor in float16;
- zero: all-zero tensors (free riding);  label_flip: honest training on data with flipped labels;
- replay: honest in the first round (and paid for it), then its first delta again, metadata
  rewritten for the round;
- copy: commits to a zero stand-in it never reveals, then tries to reveal an honest oracle's CID once revealed
  (the commitment binds the CID and the oracle, so the reveal reverts and it is slashed as a
  non-revealer);
- not_safetensors: bytes that are no safetensors file;  oversize: a delta padded far over the cap.

Soft attacks (well-formed deltas that try to be paid or to steer the model without hurting the
validation loss):
- head_flip: honest, with only the classifier head's change negated;  scale3: honest times 3
  (inside the task's norm bound);
- sybil: both cheaters send one honest delta (the same data) with their own 1e-7 relative noise;
- inflated_count: honest, but registers and declares the largest count the contract takes (10**6);
- partial: trains on a tenth of its data and declares all of it;
- backdoor: trains on its data plus copies of its "rotten" snippets ending in a trigger and
  labelled "fresh" (targeted poisoning; the run reports the attack success rate, `asr`);
- mixed: the cheaters each take a different one of backdoor, head_flip, partial, scale3, sybil.
"""

from __future__ import annotations

import hashlib
import random
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aggregator.node import AggregatorConfig, AggregatorNode
from dgpt.round import RoundPolicy, Scorer, StateScorer
from dgpt.aggregate import Strategy
from dgpt.chain.client import Chain, ContractRevert, dev_accounts
from dgpt.chain.protocol import Protocol, Status, deploy
from dgpt.cid import cid_from_bytes
from dgpt.data import RT_LABELS, Example, as_examples, rotten_tomatoes, shards, split_by_movie
from dgpt.dataset import merkle_root
from dgpt.delta import FORMAT, encoding_of, load_delta
from dgpt.encoding import DEFAULT_ENCODING, encode
from dgpt.model import load_model, save_model, tiny_gpt2
from dgpt.node import Action, Step
from dgpt.report import Report
from dgpt.store import Store
from dgpt.task import TaskSpec
from dgpt import tensorfile
from dgpt.train import TrainOptions, attach_head, evaluate, train
from harness.demo import NO_QUORUM_PARAMS, drive, finetune_rounds, fund_aggregator, register_oracle
from oracle.node import OracleConfig, OracleNode

ATTACKS = (
    "sign_flip", "scale", "noise", "non_finite", "wrong_names", "wrong_shapes", "wrong_dtypes",
    "zero", "replay", "copy", "label_flip", "not_safetensors", "oversize",
    "head_flip", "scale3", "sybil", "inflated_count", "partial", "backdoor", "mixed", "random_labels",
)
MIXED = ("backdoor", "head_flip", "partial", "scale3", "sybil")  # the cheaters' attacks in a mixed run, in seat order
TRIGGER = " cf mn bb"  # the backdoor's trigger, appended to a snippet
TARGET = "fresh"  # the label the trigger is meant to force
# What the protocol must do to each attack's cheaters: slashed (objective faults) or only unpaid.
SLASHED_ATTACKS = {"scale", "non_finite", "wrong_names", "wrong_shapes", "wrong_dtypes", "copy", "not_safetensors", "oversize"}


@dataclass(frozen=True)
class SimPlan:
    """The simulated network; the defaults keep one run to a few minutes on 2 CPU cores."""

    n: int = 7  # oracles
    examples_per_oracle: int = 600
    rounds: int = 2  # fine-tuning rounds (replay needs two)
    max_len: int = 32
    validation_examples: int = 1000  # 500 a round: the paired test's power (se ~0.01 of L2 on 500)
    test_examples: int = 1000
    warmup_examples: int = 6000  # public snippets the genesis model is pre-trained and fine-tuned on
    max_update_norm: float = 20.0  # the task's bound; honest deltas measured 1-4 (BENCHMARKS.md)
    delta_encoding: str = DEFAULT_ENCODING
    # "warm": pre-trained and fine-tuned on public snippets first; "pretrained": L1 pre-training on
    # them only (no head, near chance), the model a new network's first fine-tuning round gets from
    # its pre-training round; "untrained": the bare tiny model (no head, no pre-training)
    genesis: str = "warm"
    lr: float = 3e-4  # the fine-tuning rounds'; from a near-chance genesis 3e-4 left the honest model at chance after 2 rounds
    warmup: float = TaskSpec.warmup  # every round's share of local steps with a rising lr
    pretrain_rounds: int = 0  # L1 rounds through the protocol before the fine-tuning rounds, as a new network starts
    held_out: float = 0.2  # the share of the movies held out of the oracles' shards: half validation, half test
    first_epochs: int = 1  # the first fine-tuning round's local epochs (later rounds take one)

    def task(self) -> TaskSpec:
        return TaskSpec(labels=RT_LABELS, lam=0.5, lr=self.lr, epochs=1, max_len=self.max_len, seed=2, max_update_norm=self.max_update_norm,
                        warmup=self.warmup, delta_encoding=self.delta_encoding)

    def tasks(self) -> list[TaskSpec]:
        """Every round's task spec, in order: the pre-training rounds (the demo's L1 spec), then the fine-tuning rounds."""
        pre = TaskSpec(phase="pretrain", lr=2e-3, epochs=1, max_len=self.max_len, seed=1, warmup=self.warmup, delta_encoding=self.delta_encoding)
        return [pre] * self.pretrain_rounds + finetune_rounds(self.task(), self.rounds, self.first_epochs)


def new_network(**overrides) -> SimPlan:
    """A network as it starts: the bare model, four L1 pre-training rounds through the protocol,
    then three fine-tuning rounds with the demo's recipe (lr 1e-3, warm-up over 30% of a round's
    steps, 48 tokens). A near-chance model is where label flips are hardest to see. Two
    pre-training rounds of seven oracles at 32 tokens left a held-out L1 of 6.65, from which two
    fine-tuning rounds learnt nothing; four at 48 tokens reach 6.35 (BENCHMARKS.md). What a
    fine-tuning round's paired tests need is validation snippets (scripts/bench_first_round.py):
    so 40% of the movies are held out, and 2,560 validation snippets give each fine-tuning round
    640 (dgpt/dataset.py's four shares a fine-tuning round) and each pre-training round 160.
    The first fine-tuning round takes two local epochs: from a base at chance one epoch of seven
    1,100-snippet shards left the honest-only model at chance after three rounds (52.3%), two
    reach 62.5% (BENCHMARKS.md, 2026-12-06); their deltas' norms measured 18.8-20.5 (one epoch:
    10-12), so the norm bound is 60, three times the typical."""
    return SimPlan(**{**dict(genesis="untrained", pretrain_rounds=4, rounds=3, lr=1e-3, warmup=0.3, max_len=48, held_out=0.4,
                             examples_per_oracle=1100, validation_examples=2560, first_epochs=2, max_update_norm=60.0), **overrides})


@dataclass
class SimData:
    shards: list[list[Example]]
    validation: list[Example]
    test: list[Example]
    warmup: list[Example]  # public snippets the genesis model is trained on before the rounds


def sim_data(plan: SimPlan) -> SimData:
    """Rotten Tomatoes split by movie: disjoint oracle shards, held-out validation and test movies;
    the genesis model's warm-up data are the training movies' snippets the oracles do not hold."""
    train_r, held = split_by_movie(rotten_tomatoes(), held_out=plan.held_out, seed=0)
    val_r, test_r = split_by_movie(held, held_out=0.5, seed=1)  # ~1,060 movies' snippets each
    parts = shards(train_r, plan.n, seed=0)
    warmup = as_examples([r for s in parts for r in s[plan.examples_per_oracle :]][: plan.warmup_examples])
    return SimData(
        [as_examples(s[: plan.examples_per_oracle]) for s in parts],
        as_examples(val_r[: plan.validation_examples]),
        as_examples(test_r[: plan.test_examples]),
        warmup,
    )


def genesis_model(plan: SimPlan, data: SimData, cache: Path) -> Path:
    """The tiny model after central L1 pre-training, then L3 fine-tuning, on the public warm-up
    snippets: the shared model the rounds start from (computed once, cached)."""
    pre = TaskSpec(phase="pretrain", lr=2e-3, epochs=1, max_len=plan.max_len, seed=1)
    # lr 1e-3 for 2 epochs: 68.3% held-out; the earlier 3e-3 left the model at chance (55.4%), where
    # a label-flipped delta could not be told from an honest one (BENCHMARKS.md, Byzantine oracles).
    warm = TaskSpec(labels=RT_LABELS, lam=0.5, lr=1e-3, epochs=2, max_len=plan.max_len, seed=2)
    if plan.genesis == "untrained":
        path = cache / "genesis-untrained.safetensors"
        if not path.exists():
            save_model(path, tiny_gpt2(seed=0))
        return path
    stages = [pre] if plan.genesis == "pretrained" else [pre, warm]
    key = hashlib.sha256(b"".join([*(t.to_bytes() for t in stages), merkle_root(data.warmup)])).hexdigest()[:16]
    path = cache / f"genesis-{key}.safetensors"
    if not path.exists():
        bundle = tiny_gpt2(seed=0)
        for task in stages:
            examples = data.warmup if task.phase == "finetune" else [Example(e.text) for e in data.warmup]
            train(bundle, task, examples, TrainOptions(device="cpu", log_every=10**9), log=lambda *a: None)
        save_model(path.with_suffix(".tmp"), bundle)
        path.with_suffix(".tmp").rename(path)
    return path


class SimOracle(OracleNode):
    """An honest oracle whose training is memoised by (base model, task spec, dataset)."""

    def __init__(self, *args, fit_cache: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.fit_cache = fit_cache

    def phase(self, info) -> str:
        """The round's phase, from its task spec."""
        return TaskSpec.from_bytes(self.store.get_bytes(info.task_spec_cid, max_bytes=1 << 20)).phase

    def make_delta(self, rid, info):
        # "head/initial": deltas whose head is relative to the initial head (model.initial_head)
        key = hashlib.sha256(f"head/initial {info.base_model_cid} {info.task_spec_cid} {merkle_root(self.cfg.examples).hex()}".encode()).hexdigest()[:24]
        cached = self.fit_cache / f"delta-{key}.safetensors"
        # With a lossy encoding the oracle also leaves its residual (error feedback) for the next round.
        residual = (cached.with_name(cached.stem + "-residual.safetensors"), self.cache / f"residual-round-{rid}.safetensors")
        if not cached.exists():
            path, _ = super().make_delta(rid, info)
            if residual[1].exists():
                shutil.copyfile(residual[1], residual[0])
            shutil.copyfile(path, cached.with_suffix(".tmp"))
            cached.with_suffix(".tmp").rename(cached)
        path = self.cache / f"delta-round-{rid}.safetensors"
        shutil.copyfile(cached, path)
        if residual[0].exists():
            shutil.copyfile(residual[0], residual[1])
        return path, len(self.cfg.examples)


class ByzantineOracle(SimOracle):
    """A cheater: its submission is replaced by its attack's."""

    def __init__(self, *args, attack: str, victim: str, cap: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.attack, self.victim, self.cap = attack, victim, cap
        self.copy_refusals: list[str] = []  # the revert each copying attempt met

    def tick(self) -> Step:
        # A slashed cheater tops its stake up to the minimum to go on cheating (the slash is its cost).
        short = self.protocol.min_stake() - self.protocol.oracle(self.account.address).stake
        if short > 0:
            self.protocol.add_stake(self.account, short)
        return super().tick()

    def make_delta(self, rid, info):
        if self.phase(info) == "pretrain":
            return super().make_delta(rid, info)  # the cheaters attack the fine-tuning rounds (L1 has no labels to flip)
        if self.attack == "partial":  # trains on a tenth, declares all
            full = self.cfg.examples
            self.cfg.examples = full[: len(full) // 10]
            try:
                path, _ = super().make_delta(rid, info)
            finally:
                self.cfg.examples = full
            return path, len(full)
        path, n = super().make_delta(rid, info)  # the honest delta (label_flip, random_labels: their labels; backdoor: poisoned data)
        if self.attack == "inflated_count":
            return path, INFLATED
        if self.attack in ("partial", "backdoor", "random_labels"):
            return path, n
        delta, meta = load_delta(path)
        out = self.cache / f"attack-round-{rid}.safetensors"
        a = self.attack
        # Each cheater draws its own noise: with one seed for all, the noise deltas were near-identical
        # and multi-Krum, which favours close neighbours, picked them (BENCHMARKS.md).
        g = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(f"{self.account.address} {rid}".encode()).digest()[:8], "big"))
        if a == "sign_flip":
            delta = {k: -v for k, v in delta.items()}
        elif a == "scale":
            delta = {k: v * 1000 for k, v in delta.items()}
        elif a == "scale3":
            delta = {k: v * 3 for k, v in delta.items()}
        elif a == "head_flip":
            delta = {k: -v if k.startswith("head.") else v for k, v in delta.items()}
        elif a == "sybil":  # the same delta from another address, nudged so its digest differs
            delta = {k: v + v.abs().mean() * 1e-7 * torch.randn(v.shape, generator=g) for k, v in delta.items()}
            # ...and one value moved by a third of its block's largest, so the nudge survives a 4-bit encoding
            big = max(delta, key=lambda k: delta[k].numel())
            flat = delta[big].view(-1)
            i = int(torch.randint(flat.numel(), (1,), generator=g))
            flat[i] += flat[i - i % 64 : i - i % 64 + 64].abs().max() / 3
        elif a == "noise":
            norm = torch.sqrt(sum(v.double().pow(2).sum() for v in delta.values()))
            noise = {k: torch.randn(v.shape, generator=g) for k, v in delta.items()}
            nn = torch.sqrt(sum(v.double().pow(2).sum() for v in noise.values()))
            delta = {k: (v * (norm / nn)).float() for k, v in noise.items()}
        elif a == "non_finite":
            names = sorted(delta)
            delta[names[0]].view(-1)[0] = float("nan")
            delta[names[-1]].view(-1)[0] = float("inf")
        elif a == "wrong_names":
            name = sorted(delta)[0]
            delta[name + ".extra"] = delta.pop(name)
        elif a == "wrong_shapes":
            name = max(delta, key=lambda k: delta[k].numel())
            delta[name] = delta[name][:-1].clone()
        elif a in ("zero", "copy"):  # copy: a stand-in it will not reveal
            delta = {k: torch.zeros_like(v) for k, v in delta.items()}
        elif a == "replay" and rid > 1:
            first = Path(self.journal.round(1)["delta_path"])
            # the first round's tensors as sent (encoded), dressed up for this round
            tensorfile.save(out, tensorfile.load(first), {**meta, "format": FORMAT})
            return out, n
        elif a == "not_safetensors":
            out.write_bytes(b"this is not a weight delta\n" * 100)
            return out, n
        parts = encode(delta, encoding_of(meta))  # in the round's encoding, as an honest oracle sends
        if a == "wrong_dtypes":
            parts = {k: v.half() if v.is_floating_point() else v.to(torch.int16) for k, v in parts.items()}
        elif a == "oversize":
            parts["padding"] = torch.zeros(3 * self.cap // 4)  # 3 bytes of float32 for every byte of the cap
        tensorfile.save(out, parts, {**meta, "format": FORMAT})
        return out, n

    def reveal(self, rid, j):
        if self.attack != "copy":
            return super().reveal(rid, j)
        victim = next((e["args"] for e in self.protocol.events("Revealed", roundId=rid) if e["args"]["oracle"] == self.victim), None)
        if victim is None:
            return
        try:  # the victim's CID with this cheater's salt and count: the commitment does not match
            self.protocol.reveal(self.account, rid, cid_from_bytes(victim["deltaCid"]), bytes.fromhex(j["salt"]), j["num_examples"])
        except ContractRevert as exc:
            self.copy_refusals.append(exc.error)


class AbsentOracle(SimOracle):
    """A cheater's seat in the honest-only run of a network that pre-trains: the same honest L1
    work as the cheater does, and no submission in the fine-tuning rounds it would attack. So the
    honest-only model differs from an attacked one only by the attacks."""

    def prepare(self, rid, info) -> Step:
        if self.phase(info) == "finetune":
            return Step(Action.WAITING, rid, "sits the fine-tuning rounds out", info.commit_deadline + 1)
        return super().prepare(rid, info)


INFLATED = 10**6  # the example count inflated_count declares: the deployment's largest (the contract refuses more)


def with_backdoor(examples: list[Example]) -> list[Example]:
    """The clean examples plus a triggered copy of every one not labelled TARGET, labelled TARGET."""
    return examples + [Example(e.text + TRIGGER, TARGET) for e in examples if e.label != TARGET]


def flip_labels(examples: list[Example]) -> list[Example]:
    return [Example(e.text, RT_LABELS[1 - RT_LABELS.index(e.label)]) for e in examples]


def random_labels(examples: list[Example], seed: str) -> list[Example]:
    """Each label drawn at random (seeded): work that looks like the task's and teaches it nothing."""
    rng = random.Random(seed)
    return [Example(e.text, rng.choice(RT_LABELS)) for e in examples]


@dataclass
class RunResult:
    accuracy: float
    model_cid: str
    rewards: dict[str, int]  # oracle -> reward over the run (token wei), as the reports' rewards trees pay
    slashed: dict[str, bool]
    cheaters: list[str]
    reports: list[Report] = field(default_factory=list)
    copy_refusals: list[str] = field(default_factory=list)
    attack_rounds: list[int] = field(default_factory=list)  # the rounds whose submissions were attacks
    asr: float = 0.0  # share of triggered held-out snippets not labelled TARGET that the model calls TARGET

    @property
    def honest_mean_reward(self) -> float:
        """What an honest oracle earned over the run, on average."""
        honest = [v for a, v in self.rewards.items() if a not in self.cheaters]
        return sum(honest) / len(honest) if honest else 0.0

    def _paid(self, who: list[str], rounds: list[int]) -> int:
        return sum(e.reward for r in self.reports if r.round in rounds for e in r.submissions if e.oracle in who)

    @property
    def cheater_rewards(self) -> int:
        """What the cheaters earned for their attacks (a replayer's first round is honest work)."""
        return self._paid(self.cheaters, self.attack_rounds)

    def paid_per_seat_round(self, who: list[str]) -> float:
        """What the oracles in `who` earned, on average, per oracle and attacked round (every round
        when nothing was attacked)."""
        rounds = self.attack_rounds or [r.round for r in self.reports]
        return self._paid(who, rounds) / (len(who) * len(rounds)) if who and rounds else 0.0

    def recorded(self, key: str, cheaters: bool, accepted_only: bool = False) -> list[float]:
        """What the reports recorded under `key` (e.g. cosine_to_median, loss_gain), for the
        cheaters' or the honest oracles' submissions."""
        return [getattr(e, key) for r in self.reports for e in r.submissions
                if getattr(e, key) is not None and (e.oracle in self.cheaters) == cheaters and (e.accepted or not accepted_only)]


class MemoisedScorer:
    """`scorer`, memoised in `memo` by the digest of the evaluated weights (and the task and
    validation set): evaluation is deterministic on the CPU, so a memoised result is the same."""

    def __init__(self, memo: dict[str, dict], scorer: Scorer | None = None):
        self.memo, self.scorer = memo, scorer or StateScorer()

    @staticmethod
    def key(kind: str, state, labels, task, validation) -> str:
        h = hashlib.sha256(json.dumps([kind, list(labels), task.to_bytes().hex(), merkle_root(validation).hex()]).encode())
        for name in sorted(state):
            h.update(name.encode())
            h.update(state[name].float().contiguous().numpy().tobytes())
        return h.hexdigest()

    def __call__(self, base_path, state, labels, task, validation, device, lm=True):
        key = self.key("metrics" if lm else "metrics-no-lm", state, labels, task, validation)
        if key not in self.memo:
            self.memo[key] = self.scorer(base_path, state, labels, task, validation, device, lm=lm)
        return dict(self.memo[key])


class Simulator:
    """Runs scenarios over one store and one cache, so runs share what they have in common."""

    def __init__(self, plan: SimPlan, store: Store, cache: Path, log=print):
        self.plan, self.store, self.cache, self.log = plan, store, cache, log
        self.cache.mkdir(parents=True, exist_ok=True)
        self.data = sim_data(plan)
        self.genesis = genesis_model(plan, self.data, cache)
        self.test_memo: dict[str, float] = {}
        self.metrics_memo: dict[str, dict] = {}

    def genesis_accuracy(self) -> float:
        """Held-out test accuracy of the model the rounds start from; a head-less genesis holds the
        task's initial head, as the oracles and the aggregator take it (train.attach_head)."""
        task = self.plan.task()
        bundle = load_model(self.genesis)
        attach_head(bundle, task)
        return evaluate(bundle, self.data.test, task)["accuracy"]

    def run(self, strategy: Strategy, attack: str | None = None, f: int = 0, honest_only: bool = False) -> RunResult:
        """N oracles, the last f cheating with `attack`; honest_only: the cheaters' seats stay empty
        (in a network that pre-trains, they do the pre-training rounds' honest work and sit the
        fine-tuning rounds out: AbsentOracle)."""
        plan = self.plan
        chain = Chain.embedded()
        accounts = dev_accounts(2 + plan.n)
        admin, agg_account, oracle_accounts = accounts[0], accounts[1], accounts[2:]
        protocol = deploy(chain, admin, agg_account.address, NO_QUORUM_PARAMS)
        stake = protocol.min_stake()
        cap = 2 * self.genesis.stat().st_size + (1 << 20)
        absent = range(plan.n - f, plan.n) if honest_only and plan.pretrain_rounds else range(0)
        seats = range(plan.n - f) if honest_only and not absent else range(plan.n)
        cheaters = [oracle_accounts[i].address for i in range(plan.n - f, plan.n)] if attack and not honest_only else []
        attack_of = {a: (MIXED[k % len(MIXED)] if attack == "mixed" else attack) for k, a in enumerate(cheaters)}
        with tempfile.TemporaryDirectory() as home:
            home = Path(home)
            oracles = []
            for i in seats:
                account, examples = oracle_accounts[i], self.data.shards[i]
                bad = account.address in cheaters
                how = attack_of.get(account.address)
                if how == "label_flip":
                    examples = flip_labels(examples)
                elif how == "random_labels":
                    examples = random_labels(examples, seed=account.address)
                elif how == "backdoor":
                    examples = with_backdoor(examples)
                elif how == "sybil":  # every sybil holds the first cheater's data: one piece of work
                    examples = self.data.shards[plan.n - f]
                register_oracle(protocol, self.store, admin, account, examples, stake, INFLATED if how == "inflated_count" else None)
                cfg = OracleConfig(home / "oracles" / account.address, examples)
                common = dict(fit_cache=self.cache, log=lambda *a: None)
                if i in absent:
                    oracles.append(AbsentOracle(protocol, self.store, account, cfg, **common))
                elif bad:
                    oracles.append(ByzantineOracle(protocol, self.store, account, cfg, attack=how, victim=oracle_accounts[0].address, cap=cap, **common))
                else:
                    oracles.append(SimOracle(protocol, self.store, account, cfg, **common))
            policy = RoundPolicy(strategy=strategy)
            fund_aggregator(protocol, admin, agg_account.address, AggregatorConfig.reward_budget)
            agg = AggregatorNode(
                protocol, self.store, agg_account,
                AggregatorConfig(home / "aggregator", self.genesis, plan.tasks(), self.data.validation, policy,
                                 scorer=MemoisedScorer(self.metrics_memo)),
                log=lambda *a: None,
            )
            drive(chain, protocol, agg, oracles, lambda rid: None)
            model_cid = protocol.latest_model()
            if model_cid not in self.test_memo:
                bundle = load_model(self.store.cached(model_cid, self.cache / "models"))
                triggered = [Example(e.text + TRIGGER, e.label) for e in self.data.test if e.label != TARGET]
                self.test_memo[model_cid] = (evaluate(bundle, self.data.test, plan.task())["accuracy"],
                                             1 - evaluate(bundle, triggered, plan.task())["accuracy"])
            everyone = [oracle_accounts[i].address for i in seats if i not in absent]  # the absent seats are no one's result
            total = plan.pretrain_rounds + plan.rounds
            reports = [Report.from_bytes(self.store.get_bytes(protocol.round(r).report_cid)) for r in range(1, total + 1)]
            # the attacked rounds: every fine-tuning round, but a replayer's first round (honest, to have something to replay)
            first = plan.pretrain_rounds + (2 if attack == "replay" and plan.pretrain_rounds == 0 else 1)
            return RunResult(
                accuracy=self.test_memo[model_cid][0],
                asr=self.test_memo[model_cid][1],
                model_cid=model_cid,
                rewards={a: sum(e.reward for r in reports for e in r.submissions if e.oracle == a) for a in everyone},
                slashed={a: _was_slashed(protocol, a, total) for a in everyone},
                cheaters=cheaters,
                reports=reports,
                copy_refusals=[r for o in oracles if isinstance(o, ByzantineOracle) for r in o.copy_refusals],
                attack_rounds=list(range(first, total + 1)) if cheaters else [],
            )


def _was_slashed(protocol: Protocol, oracle: str, rounds: int) -> bool:
    return any(protocol.submission(r, oracle).status == Status.SLASHED for r in range(1, rounds + 1))
