"""The round report: what the aggregator decided about every submission and why, as one typed
document stored by CID. The aggregator writes it; the audit, the oracles' claims, the demo and the
simulator read it through these classes, never by string keys.

`Reason` is the one list of verdicts. Those with a slash reason are the faults anyone can prove from
the revealed bytes; their codes are the contract's `SlashReason` (a test compares the two).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum

from dgpt.chain.protocol import SlashReason
from dgpt.commitments import EntriesTree, EntryLeaf, Result, SlashesTree
from dgpt.errors import DGPTError

FORMAT = "dgpt-report/9"


class Reason(str, Enum):
    """Why a submission was not merged (or why a committer was slashed)."""

    NO_REVEAL = "no_reveal"  # committed, never revealed: anyone may slash
    MALFORMED = "malformed"  # unreadable, oversized, or tensors not matching the base model
    NON_FINITE = "non_finite"  # NaN or infinity
    NORM_OUT_OF_BOUND = "norm_out_of_bound"  # L2 norm above the task's bound
    OVER_COMMITMENT = "over_commitment"  # more examples declared than the dataset commitment holds
    UNAVAILABLE = "unavailable"  # not fetchable, or bytes not matching the CID: nothing provable
    STALE = "stale"  # made for another base model (may be an honest client's bug)
    REPLAYED = "replayed"  # the same tensors as an earlier delta, or as another in this round
    DIVERGENT = "divergent"  # points away from where the round's deltas point (whole, or one part)
    HARMFUL = "harmful"  # raises the validation loss when applied alone, by the paired test
    FREE_RIDING = "free_riding"  # changes nothing (a zero delta)
    NO_LEARNING_SHOWN = "no_learning_shown"  # from a base that ranks the labels at chance: not shown to rank or classify them better

    @property
    def slash_reason(self) -> SlashReason | None:
        """The contract's reason code when this verdict is slashed, else None (rejected, unpaid)."""
        return _SLASHED.get(self)


_SLASHED = {
    Reason.NO_REVEAL: SlashReason.NO_REVEAL,
    Reason.MALFORMED: SlashReason.MALFORMED,
    Reason.NON_FINITE: SlashReason.NON_FINITE,
    Reason.NORM_OUT_OF_BOUND: SlashReason.NORM_OUT_OF_BOUND,
}


@dataclass
class Entry:
    """One revealed submission and the verdict on it."""

    oracle: str
    delta_cid: str
    num_examples: int
    accepted: bool = False
    reason: Reason | None = None
    detail: str = ""
    norm: float | None = None
    data_sha256: str | None = None  # sha256 of the tensor bytes (replay detection)
    cosine_to_median: float | None = None
    part_cosine: dict | None = None  # cosine to the round's median per part ("backbone", "head")
    part_norm: dict | None = None  # L2 norm per part
    part_along: dict | None = None  # per part, its length along the round's median delta
    alone: dict | None = None  # validation metrics of the base plus this delta alone
    loss_gain: float | None = None  # mean fall of the per-example validation loss, this delta applied alone
    gain_se: float | None = None  # its standard error (the paired test when pre-training: rules.significantly_harmful)
    accuracy_gain: float | None = None  # change of the validation accuracy, alone (the paired test when fine-tuning)
    accuracy_gain_se: float | None = None
    # change of how the model ranks the validation labels, alone (rules.ranking_gain: the paired test when fine-tuning)
    ranking_gain: float | None = None
    ranking_gain_se: float | None = None
    # What it adds to the merge: the merged model's mean loss fall (and accuracy change) against the
    # same merge without it, per validation example (round.marginal), and their standard errors
    marginal_gain: float | None = None
    marginal_gain_se: float | None = None
    marginal_accuracy_gain: float | None = None
    marginal_accuracy_gain_se: float | None = None
    # A delta found harmful alone, judged again in the merge (round.reconsider): what it adds to the
    # merge of the round's accepted and harmful-alone deltas ({"loss_gain", "gain_se", and when
    # fine-tuning "accuracy_gain", "accuracy_gain_se", "ranking_gain", "ranking_gain_se"}); accepted
    # only when shown to help there
    in_merge: dict | None = None
    weight: int = 0  # merge weight: the revealed example count when merged, at most the round's median
    duplicate_of: str | None = None  # the first oracle of its group of near-duplicates (they share one weight)
    clip: dict | None = None  # per part, the factor the merge scaled this delta by (1: unclipped)
    contribution: float | None = None  # its share of the merge's work (round.value): rewards follow it
    reward: int = 0  # token base units
    delta_bytes: int | None = None  # size of the revealed (encoded) delta file

    def reject(self, reason: Reason, detail: str = "") -> None:
        self.accepted, self.reason, self.detail = False, reason, detail

    def to_json(self) -> dict:
        d = asdict(self)
        d["reason"] = self.reason.value if self.reason else None
        d["reward"] = str(self.reward)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Entry:
        return cls(**{**d, "reason": Reason(d["reason"]) if d.get("reason") else None, "reward": int(d["reward"])})


@dataclass
class Slash:
    """A slash the report commits to; the penalty is the contract's, fixed per reason."""

    oracle: str
    reason: Reason

    def to_json(self) -> dict:
        return {"oracle": self.oracle, "reason": self.reason.value, "code": int(self.reason.slash_reason)}

    @classmethod
    def from_json(cls, d: dict) -> Slash:
        return cls(d["oracle"], Reason(d["reason"]))


@dataclass
class Report:
    round: int
    phase: str
    base_model_cid: str
    task_spec_cid: str
    strategy: dict  # Strategy.to_json()
    strategy_decisions: dict
    checks: dict  # the bounds the checks used
    labels: list[str]
    submissions: list[Entry]
    merged: list[str]
    non_revealers: list[str]
    slashes: list[Slash]
    validation: dict  # {"n", "cid", "root", "before", "after"}
    software: dict = field(default_factory=dict)
    # The leaves under the published entries root, as published: claims and challenges prove these.
    # None: derived from the submissions and slashes (`derived_entries`), as an honest report's are.
    entries: EntriesTree | None = None

    def derived_entries(self) -> EntriesTree:
        """One leaf per revealed submission, in oracle-address order, from the verdicts."""
        slashed = {s.oracle: s.reason.slash_reason for s in self.slashes if s.reason is not Reason.NO_REVEAL}
        return EntriesTree.build([(e.oracle, e.delta_cid, e.num_examples, e.weight, e.reward, slashed.get(e.oracle))
                                  for e in self.submissions])

    @property
    def entries_tree(self) -> EntriesTree:
        return self.entries if self.entries is not None else self.derived_entries()

    @property
    def rewards_total(self) -> int:
        return self.entries_tree.total

    def result(self, new_model_cid: str, report_cid: str) -> Result:
        """What a publish of this report proposes on chain (the report's own CID cannot be inside it)."""
        tree = self.slashes_tree
        return Result(new_model_cid, report_cid, self.entries_tree.root, len(self.entries_tree.leaves), self.rewards_total,
                      tree.root, len(tree.oracles), bytes.fromhex(self.validation.get("root", "0x" + "00" * 32)[2:]))

    @property
    def slashes_tree(self) -> SlashesTree:
        """The slashes the publish commits to on chain (non-revealers are slashed by their own call)."""
        return SlashesTree.build([(s.oracle, s.reason.slash_reason) for s in self.slashes if s.reason is not Reason.NO_REVEAL])

    def entry(self, oracle: str) -> Entry | None:
        return next((e for e in self.submissions if e.oracle == oracle), None)

    def verdicts(self, among=None) -> dict:
        """What the benchmarks print of a round, over the submissions of the oracles `among` (all
        when None): merged, of which found harmful alone and accepted in the merge, rejected by
        reason, the base's AUC on the slice, and sorted, each delta's ranking z alone and its
        head's cosine to the round's median (what round.shows_learning and the direction checks read)."""
        subs = [e for e in self.submissions if among is None or e.oracle in among]
        return {"merged": sum(e.oracle in self.merged for e in subs),
                "accepted_in_merge": sum(e.accepted and e.in_merge is not None for e in subs),
                "rejected": {k.value: sum(e.reason is k for e in subs) for k in sorted({e.reason for e in subs if e.reason}, key=lambda r: r.value)},
                "base_auc": self.validation.get("before", {}).get("auc"),
                "ranking_z": sorted(round(e.ranking_gain / e.ranking_gain_se, 2) for e in subs if e.ranking_gain_se),
                "head_cosine": sorted(round(e.part_cosine["head"], 3) for e in subs if e.part_cosine and "head" in e.part_cosine)}

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "round": self.round, "phase": self.phase, "base_model_cid": self.base_model_cid,
            "task_spec_cid": self.task_spec_cid, "strategy": self.strategy, "strategy_decisions": self.strategy_decisions,
            "checks": self.checks, "labels": list(self.labels), "submissions": [e.to_json() for e in self.submissions],
            "merged": self.merged, "non_revealers": self.non_revealers, "slashes": [s.to_json() for s in self.slashes],
            "validation": self.validation, "entries": [e.to_json() for e in self.entries_tree.leaves],
            "entries_root": "0x" + self.entries_tree.root.hex(),
            "rewards_total": str(self.rewards_total), "slashes_root": "0x" + self.slashes_tree.root.hex(),
            "software": self.software,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same report gives the same bytes and CID on any machine."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Report:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise DGPTError(f"not a {FORMAT} document (format {d.get('format')!r})")
            return cls(
                round=d["round"], phase=d["phase"], base_model_cid=d["base_model_cid"], task_spec_cid=d["task_spec_cid"],
                strategy=d["strategy"], strategy_decisions=d["strategy_decisions"], checks=d["checks"], labels=d["labels"],
                submissions=[Entry.from_json(e) for e in d["submissions"]], merged=d["merged"],
                non_revealers=d["non_revealers"], slashes=[Slash.from_json(s) for s in d["slashes"]],
                validation=d["validation"], software=d.get("software", {}),
                entries=EntriesTree(tuple(EntryLeaf.from_json(e) for e in d["entries"])),
            )
        except DGPTError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DGPTError(f"unreadable report: {exc.__class__.__name__}: {exc}") from None
