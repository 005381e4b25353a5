"""GPT-1's objectives as pure functions.

L1 (language modelling): negative log-likelihood of each next token of the input, padding masked;
normalised per predicted token. L2 (classification): negative log-likelihood of the label;
normalised per example (training may smooth its target, TaskSpec.label_smoothing; every
evaluation reads the plain NLL). L3 = L2 + λ·L1. These are losses (negated log-likelihoods, minimised), and
every log and evaluation reports L1, L2 and L3 with exactly these normalisations.

Under data parallelism each process returns sums and counts, and the loss divides by the global
count, so N processes compute the same gradient as one process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def lm_targets(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Next-token targets: position t predicts token t+1; positions at or past the last real token ignored."""
    targets = input_ids[:, 1:].clone()
    positions = torch.arange(targets.size(1), device=input_ids.device)
    targets[positions[None, :] >= (lengths[:, None] - 1)] = IGNORE
    return targets


def _wide(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits up to float32 for the loss; float64 (the aggregator's scoring) stays."""
    return x if x.dtype == torch.float64 else x.float()


def l1_sum(lm_logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token NLLs, number of predicted tokens)."""
    logits = lm_logits[:, :-1].reshape(-1, lm_logits.size(-1))
    nll = F.cross_entropy(_wide(logits), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return nll, (targets != IGNORE).sum()


def l2_sum(cls_logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of label NLLs, number of examples). `smoothing` (training only, TaskSpec.label_smoothing):
    the target is 1 - smoothing on the label plus smoothing / C on each of the C labels."""
    nll = F.cross_entropy(_wide(cls_logits), labels, reduction="sum", label_smoothing=smoothing)
    return nll, torch.tensor(labels.numel(), device=labels.device)


def l3(l1: torch.Tensor, l2: torch.Tensor, lam: float) -> torch.Tensor:
    return l2 + lam * l1
