"""ReXNet's rank measure (Han et al., 2021, section 3): the rank of a layer's output
feature matrix X (N x C: N = batch x H x W positions, C channels), normalised by the
largest rank it could have, min(N, C).

Two measures. ``effective`` (the default) is the entropy-based effective rank of Roy and
Vetterli (2007), exp(H(p)) with p the singular values divided by their sum: a soft rank
that counts small singular values for less. ``threshold`` counts the singular values above
``tol`` times the largest. The paper writes rank(f(WX)) / d_out without a tolerance; a
hard numerical rank is 1.0 for nearly every nonlinear layer (a nonlinearity makes the
matrix full-rank to machine precision), so it cannot show the trends of Figure 1, which
the soft measure does (docs/search.md compares them).

:func:`feature_ranks` measures a spec's layers with random weights and random inputs;
:func:`study` is the random-network study behind Figure 1. torch is imported inside.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager

MEASURES = ("effective", "threshold")
NONLINEARITIES = ("linear", "relu", "relu6", "leaky_relu", "elu", "softplus", "swish",
                  "hswish", "sigmoid")


def normalized_rank(x, measure: str = "effective", tol: float = 1e-2) -> float:
    """Rank of the 2-D tensor ``x`` (N x C) over min(N, C), in [0, 1]."""
    s = _singular_values(x)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0.0
    if measure == "threshold":
        r = float((s > tol * s[0]).sum())
    else:
        p = s / s.sum()
        p = p[p > 0]
        r = math.exp(float(-(p * p.log()).sum()))
    return r / min(x.shape)


@contextmanager
def one_thread():
    """Small SVDs and convolutions run fastest on one thread (a shared machine's threads
    cost 20x on a 256 x 64 SVD); torch's setting is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded(f):
    import functools

    @functools.wraps(f)
    def run(*args, **kw):
        with one_thread():
            return f(*args, **kw)

    return run


def _singular_values(x):
    """Singular values, largest first; through the C x C Gram matrix when the matrix is
    tall (many positions), which is exact to ~1e-8 of the largest, far below ``tol``."""
    import torch

    x = x.double()
    if x.shape[0] <= 4 * x.shape[1]:
        return torch.linalg.svdvals(x)
    eig = torch.linalg.eigvalsh(x.T @ x).clamp(min=0).sqrt()
    return eig.flip(0)


@single_threaded
def feature_ranks(spec, *, batch: int = 16, seed: int = 0, measure: str = "effective",
                  tol: float = 1e-2) -> list[dict]:
    """For each conv layer of ``spec`` (random weights, seeded; random normal input): its
    output after the nonlinearity (after batch norm where it has none), as an
    (N x C) matrix, and the rank of that matrix. Squeeze-excite layers (1 x 1) are left
    out."""
    import torch

    from ..backends import get_backend

    graph = spec.compile()
    model = get_backend("torch").build(graph, seed=seed).eval()
    outputs: dict[str, object] = {}

    def hook(name):
        def record(_module, _inputs, out):
            outputs[name] = out.detach().clone()
        return record

    handles = [m.register_forward_hook(hook(n.rpartition(".")[0]))
               for n, m in model.named_modules()
               if n.rpartition(".")[2] in ("bn", "act") and ".se." not in n]
    gen = torch.Generator().manual_seed(seed)
    res = graph.meta.get("resolution", spec.resolution)
    x = torch.randn(batch, spec.channels, res, res, generator=gen)
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    rows = []
    for name, out in outputs.items():
        if out.dim() != 4:
            continue
        n, c, h, w = out.shape
        matrix = out.permute(0, 2, 3, 1).reshape(n * h * w, c)
        rows.append({"layer": name, "channels": c, "positions": n * h * w,
                     "rank": round(normalized_rank(matrix, measure, tol) * min(n * h * w, c),
                                   2),
                     "normalized": round(normalized_rank(matrix, measure, tol), 4)})
    return rows


def mean_rank(spec, **kw) -> float:
    """The zero-cost proxy: the mean normalised rank over a spec's layers."""
    rows = feature_ranks(spec, **kw)
    return sum(r["normalized"] for r in rows) / len(rows)


# ---- the random-network study (Figure 1) --------------------------------------------------
def _act(name: str):
    import torch.nn.functional as F

    return {"linear": lambda x: x, "relu": F.relu, "relu6": F.relu6,
            "leaky_relu": lambda x: F.leaky_relu(x, 0.01), "elu": F.elu,
            "softplus": F.softplus, "swish": F.silu, "hswish": F.hardswish,
            "sigmoid": lambda x: x.sigmoid()}[name]


def _layer(x, d_out: int, gen):
    import torch

    w = torch.randn(x.shape[1], d_out, generator=gen) / math.sqrt(x.shape[1])
    return x @ w


def _inputs(n: int, d: int, gen):
    import torch

    return torch.randn(n, d, generator=gen)


def single_layer(d_out: int, ratio: float, act: str, gen, measure: str, tol: float) -> float:
    """Figure 1a: rank of f(WX), d_in = ratio x d_out, N = 4 d_out samples."""
    d_in = max(1, round(ratio * d_out))
    return normalized_rank(_act(act)(_layer(_inputs(4 * d_out, d_in, gen), d_out, gen)),
                           measure, tol)


def bottleneck(d_out: int, ratio: float, expansion: float, act: str, gen, measure: str,
               tol: float) -> float:
    """Figure 1b: an inverted bottleneck as three random layers, d_in -> e d_in -> e d_in
    -> d_out, ReLU6 inside and ``act`` at the output (the nonlinearity studied)."""
    import torch.nn.functional as F

    d_in = max(1, round(ratio * d_out))
    d_mid = max(1, round(expansion * d_in))
    x = F.relu6(_layer(_inputs(4 * d_out, d_in, gen), d_mid, gen))
    x = F.relu6(_layer(x, d_mid, gen))
    return normalized_rank(_act(act)(_layer(x, d_out, gen)), measure, tol)


def mlp(expand: int, depth: int, act: str, d_out: int, gen, measure: str,
        tol: float) -> float:
    """Figure 1c: a ``depth``-layer network from a 32-wide stem to ``d_out`` channels whose
    first ``expand`` layers widen in equal steps (Table 1: 32-64-120-120 is two expand
    layers) and the rest keep the width; rank of the output over its width."""
    widths = [round(32 + (d_out - 32) * (i + 1) / expand) for i in range(expand)]
    widths += [d_out] * (depth - expand)
    x = _inputs(4 * d_out, 32, gen)
    for d in widths:
        x = _act(act)(_layer(x, d, gen))
    return normalized_rank(x, measure, tol)


@single_threaded
def study(networks: int, *, seed: int = 0, measure: str = "effective", tol: float = 1e-2,
          acts=NONLINEARITIES, ratios=None, expansions=None, depth: int = 5,
          progress=None) -> dict:
    """Mean normalised rank of ``networks`` random networks per point: (a) single layer
    and (b) inverted bottleneck against the channel ratio d_in / d_out, (c) bottleneck
    against its expansion ratio (d_in / d_out = 0.5), (d) ``depth``-layer networks
    against the number of expand layers (to 2 d_out channels); every nonlinearity in
    ``acts``. d_out is drawn from 16..96 per network."""
    import torch

    ratios = ratios or [round(0.1 * i, 1) for i in range(1, 11)]
    expansions = expansions or [1, 2, 3, 4, 6]
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)

    def mean(f, *args):
        total = sum(f(rng.randint(16, 96), *args) for _ in range(networks)) / networks
        if progress:
            progress(1)
        return round(total, 4)

    def single(d, r, a):
        return single_layer(d, r, a, gen, measure, tol)

    def block(d, r, e, a):
        return bottleneck(d, r, e, a, gen, measure, tol)

    def net(d, k, a):
        return mlp(k, depth, a, 2 * d, gen, measure, tol)

    out = {"networks": networks, "measure": measure, "seed": seed, "ratios": ratios,
           "expansions": expansions, "expand_layers": list(range(1, depth + 1)),
           "panels": {
               "single_layer": {a: [mean(single, r, a) for r in ratios] for a in acts},
               "bottleneck": {a: [mean(block, r, 6, a) for r in ratios] for a in acts},
               "expansion": {a: [mean(block, 0.5, e, a) for e in expansions] for a in acts},
               "expand_layers": {a: [mean(net, k, a) for k in range(1, depth + 1)]
                                 for a in acts}}}
    return out


def study_points(ratios, expansions, depth: int, acts) -> int:
    """How many points :func:`study` measures (for a progress bar)."""
    return len(acts) * (2 * len(ratios) + len(expansions) + depth)
