"""A small landmark-sequence expression classifier: the judge in the motion model's figures.

Trained on prior sequences (:func:`video_gen.prior.sample_dataset`) drawn with a seed
the motion model never saw, it tells which expression a displacement sequence
``[T+1,68,2]`` shows. The share of generated sequences it labels as the
expression they were asked for is the generator's recognition accuracy.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


class SequenceClassifier(nn.Module):
    """``(content [B,68,2], disp [B,T+1,68,2]) → [B, num_classes]`` logits (temporal convolutions)."""

    def __init__(self, num_classes: int, *, hidden: int = 96):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(2 * 68, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
        )
        self.out = nn.Sequential(nn.Linear(2 * hidden + 2 * 68, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, content, disp):
        b, t1 = disp.shape[:2]
        h = self.conv(disp.reshape(b, t1, -1).transpose(1, 2) * 10.0)
        feats = torch.cat([h.mean(2), h.amax(2), content.reshape(b, -1)], 1)
        return self.out(feats)


def train_classifier(content: np.ndarray, disp: np.ndarray, label: np.ndarray, *, num_classes: int, steps: int = 600,
                     batch: int = 128, lr: float = 2e-3, seed: int = 0) -> SequenceClassifier:
    """Fit a :class:`SequenceClassifier` on ``content [N,68,2]``, ``disp [N,T+1,68,2]``, ``label [N]``."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = SequenceClassifier(num_classes)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    c, d, y = (torch.as_tensor(a) for a in (content, disp, label))
    for step in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        loss = nn.functional.cross_entropy(clf(c[idx], d[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            log.info("classifier step %d loss %.3f", step, loss.item())
    return clf.eval()


@torch.no_grad()
def accuracy(clf: SequenceClassifier, content, disp, label) -> float:
    """Share of sequences labelled ``label``."""
    pred = clf(torch.as_tensor(content), torch.as_tensor(disp)).argmax(1).numpy()
    return float((pred == np.asarray(label)).mean())
