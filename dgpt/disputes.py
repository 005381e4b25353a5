"""What a challenger can prove on chain about a proposed round, found from the report and the
chain's records. Pure: `find_fault` takes the report and the records and returns the first fault
the contract can check by itself (DGPTProtocol's challengeEntry, challengeEntries, challengeSlash),
with the leaves and proofs to send, or None.

What no proof can show (the model bytes, the scores, a report that does not give the published
roots) is the validators' to settle by quorum: `dgpt audit` recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dgpt.commitments import EntriesTree, EntryLeaf, SlashesTree


@dataclass(frozen=True)
class Revealed:
    """The chain's record of one revealed submission."""

    delta: bytes  # sha2-256 digest of the revealed delta CID
    num_examples: int


@dataclass
class Evidence:
    """One challenge call: `kind` is entry, entries or slash."""

    kind: str
    fault: str  # the contract's Fault name it proves
    entries: list[tuple[EntryLeaf, list[bytes]]] = field(default_factory=list)
    slash: tuple[str, int, list[bytes]] | None = None  # (oracle, reason, proof)

    def __str__(self) -> str:
        who = self.slash[0] if self.slash else ", ".join(e.oracle for e, _ in self.entries)
        return f"{self.fault} ({self.kind}: {who})"


def entry_fault(e: EntryLeaf, record: Revealed | None, entry_count: int, rewards_total: int) -> str | None:
    """The fault challengeEntry proves for one entry, checked in the contract's order."""
    if record is None:
        return "ENTRY_NOT_REVEALED"
    if e.delta != record.delta or e.num_examples != record.num_examples:
        return "ENTRY_NOT_THE_REVEALED_ONE"
    if e.index >= entry_count:
        return "ENTRY_PAST_COUNT"
    if e.weight > record.num_examples:
        return "WEIGHT_ABOVE_COUNT"
    if e.reward != 0 and (e.weight == 0 or e.slashed):
        return "REWARD_NOT_MERGED"
    if e.index == 0 and e.reward_before != 0:
        return "REWARDS_BEFORE_FIRST"
    if e.index + 1 == entry_count and e.reward_before + e.reward != rewards_total:
        return "TOTAL_MISMATCH"
    return None


def find_fault(entries: EntriesTree, slashes: SlashesTree, revealed: dict[str, Revealed], entry_count: int,
               rewards_total: int) -> Evidence | None:
    """The first provable fault of a proposal whose roots are `entries.root` and `slashes.root`."""
    leaves = entries.leaves
    for e in leaves:
        fault = entry_fault(e, revealed.get(e.oracle), entry_count, rewards_total)
        if fault:
            return Evidence("entry", fault, [(e, entries.proof(e.index))])
    for a, b in zip(leaves, leaves[1:]):
        fault = ("ENTRIES_OUT_OF_ORDER" if int(b.oracle, 16) <= int(a.oracle, 16) else
                 "RUNNING_SUM_MISMATCH" if b.reward_before != a.reward_before + a.reward else None)
        if fault:
            return Evidence("entries", fault, [(a, entries.proof(a.index)), (b, entries.proof(b.index))])
    for oracle, reason in zip(slashes.oracles, slashes.reasons):
        proof = slashes.proof(oracle, reason)
        if oracle not in revealed:
            return Evidence("slash", "SLASH_NOT_REVEALED", [], (oracle, reason, proof))
        e = entries.of(oracle)
        if e is not None and not (e.slashed and e.reason == reason):
            return Evidence("slash", "SLASH_UNSUPPORTED", [(e, entries.proof(e.index))], (oracle, reason, proof))
    return None


def evidence_for(protocol, store, round_id: int) -> tuple[Evidence | None, str]:
    """The provable fault of a round's live proposal, read from the chain and the store, and why
    there is none when there is none."""
    from dgpt.cid import cid_to_bytes
    from dgpt.report import Report

    from dgpt.errors import DGPTError

    info = protocol.round(round_id)
    if not info.proposed:
        raise DGPTError(f"round {round_id} has no live proposal to challenge (it is {info.state})")
    report = Report.from_bytes(store.get_bytes(info.report_cid, max_bytes=64 << 20))
    entries, slashes = report.entries_tree, report.slashes_tree
    if entries.root != info.entries_root or slashes.root != info.slashes_root:
        return None, "the report does not give the proposed roots: no leaf can be proved; the validators' quorum settles it"
    revealed = {}
    for e in protocol.events("Revealed", roundId=round_id):
        revealed[e["args"]["oracle"]] = Revealed(cid_to_bytes(protocol.submission(round_id, e["args"]["oracle"]).delta_cid)[4:],
                                                 e["args"]["numExamples"])
    evidence = find_fault(entries, slashes, revealed, info.entry_count, info.rewards_total)
    return evidence, "" if evidence else "nothing the contract can check is wrong; run `dgpt audit` for the rest"


def send_challenge(protocol, account, round_id: int, evidence: Evidence) -> dict:
    """Send the challenge call the evidence is for."""
    if evidence.kind == "entry":
        (e, proof), = evidence.entries
        return protocol.challenge_entry(account, round_id, e, proof)
    if evidence.kind == "entries":
        (a, pa), (b, pb) = evidence.entries
        return protocol.challenge_entries(account, round_id, a, pa, b, pb)
    oracle, reason, proof = evidence.slash
    entry, entry_proof = evidence.entries[0] if evidence.entries else (None, [])
    return protocol.challenge_slash(account, round_id, oracle, reason, proof, entry, entry_proof)
