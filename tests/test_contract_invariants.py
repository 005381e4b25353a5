"""Contract properties under random call sequences: Foundry's invariant fuzzer (forge from npm,
compiling with the offline solcjs) runs tests/foundry with the sequence count foundry.toml sets."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT


def test_invariants_hold_over_ten_thousand_random_call_sequences():
    out = subprocess.run(["bash", "scripts/fuzz_contracts.sh", "--fuzz-seed", "7"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    results = re.findall(r"\[PASS\] (invariant_\w+)\(\) \(runs: (\d+), calls: (\d+), reverts: \d+\)", text)
    names = {name for name, _, _ in results}
    assert names == {
        "invariant_balanceEqualsStakesBondsAndUnpaidRewards",
        "invariant_rewardsWithinBudget",
        "invariant_lockedStakeNeverLeaves",
        "invariant_claimPaysOnce",
        "invariant_onlyRolesSlashPublishOrMint",
        "invariant_aggregatorEarnsNothingUnrevealed",
        "invariant_mintedWithinSchedule",
        "invariant_noSlashOverItsPenalty",
        "invariant_noStakeLockedAfterItsRoundEnds",
        "invariant_nothingTakesEffectBeforeFinal",
        "invariant_bondsConserved",
    }, text[-3000:]
    assert all(int(runs) >= 10_000 for _, runs, _ in results)
    assert "[PASS] test_handlerDrivesAFullRoundToClaims()" in text
    assert "[PASS] test_handlerVoidsAProposalThatPaysTheAggregator()" in text
