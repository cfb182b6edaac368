"""PatchNCE, CUT's contrastive loss: each query patch must pick its own key patch among the other patches."""
from __future__ import annotations

import argparse
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# The positive's own entry among the negatives: -10 / nce_T (e.g. -143 at 0.07) is as good as removed.
MASKED_LOGIT = -10.0


class PatchNCELoss(nn.Module):
    """InfoNCE over patches with temperature ``opt.nce_T``; ``crit(feat_q, feat_k)`` gives one loss per row.

    ``feat_q`` and ``feat_k`` are (B*P) x C with unit rows, image-major (as ``PatchSampleF`` returns them); row i
    of the keys is the positive of query i. The negatives of a query are the keys of the same image (B groups
    of P rows), or of the whole batch with ``opt.nce_includes_all_negatives_from_minibatch``. The keys are
    detached: no gradient flows through them.
    """

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__()
        self.opt = opt

    def forward(self, feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: Optional[int] = None) -> torch.Tensor:
        """Cross-entropy of [positive, negatives] / nce_T against the positive, per row (no reduction).

        ``batch_size`` is the number of images the rows come from (default ``opt.batch_size``); the model passes
        the batch it actually has, so a short last batch or a per-process batch is grouped correctly.
        """
        rows, dim = feat_q.shape
        feat_k = feat_k.detach()
        l_pos = torch.bmm(feat_q.view(rows, 1, dim), feat_k.view(rows, dim, 1)).view(rows, 1)
        if self.opt.nce_includes_all_negatives_from_minibatch:
            groups = 1
        else:
            groups = int(batch_size if batch_size is not None else self.opt.batch_size)
        if groups < 1 or rows % groups:
            raise ValueError(f"PatchNCE: {rows} rows cannot be split into {groups} images")
        q = feat_q.view(groups, -1, dim)
        k = feat_k.view(groups, -1, dim)
        per_group = q.shape[1]
        l_neg = torch.bmm(q, k.transpose(2, 1))
        diagonal = torch.eye(per_group, device=feat_q.device, dtype=torch.bool)[None]
        l_neg = l_neg.masked_fill(diagonal, MASKED_LOGIT).view(-1, per_group)
        logits = torch.cat((l_pos, l_neg), dim=1) / self.opt.nce_T
        target = torch.zeros(rows, dtype=torch.long, device=feat_q.device)
        return F.cross_entropy(logits, target, reduction="none")
