"""An exponential moving average of a model's weights, kept beside the model when the
recipe asks for one (``ema:``); validated and saved as ``best.pt`` in its place."""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """An exponential moving average of a model's weights (buffers copied)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self._pair(model)

    def _pair(self, model):
        ours, theirs = self.module.state_dict(), model.state_dict()
        self.floats = [(ours[k], theirs[k]) for k in ours if ours[k].is_floating_point()]
        self.others = [(ours[k], theirs[k]) for k in ours if not ours[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = self.decay
        if self.warmup:
            d = min(d, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([a for a, _ in self.floats], [b for _, b in self.floats], 1 - d)
        for a, b in self.others:
            a.copy_(b)

    def state(self) -> dict:
        return {"updates": self.updates, "state": self.module.state_dict()}

    def load(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["state"])
