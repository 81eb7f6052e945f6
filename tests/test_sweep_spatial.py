"""Blocks fused once with symbolic sizes (latency/spatial.py) and evaluated at other input
sizes give the kernels a concrete fusion gives there; a fusion that reads a size is
fused concretely."""
import dataclasses
import math
from pathlib import Path

import archspec
import pytest

from archspec.analysis import memo as block_memo
from archspec.analysis.memo import SweepMemo
from archspec.analysis.sweep import random_variants, vary
from archspec.latency import kernels as fusion
from archspec.latency import memo as latency_memo
from archspec.latency.profile import load
from archspec.latency.spatial import Figures, Poly, Unknown, bind, symbolic_shapes

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "cpu-ort-1t.json"


def test_poly_arithmetic_and_exact_division():
    h, w = Poly.symbol("h"), Poly.symbol("w")
    area = math.prod((16, h, w))
    assert area // (h * w) == 16 and type(area // (h * w)) is int
    assert (area + 3 * h * w - 19 * w * h) == 0 * h   # cancels to the int 0
    assert (2 * h - h - h) == 0 and type(2 * h - h - h) is int
    assert Figures([area + 1, 7, h * w * w]).at({"h": 3, "w": 5}) == [241, 7, 75]
    assert (h, w) == (h, w) and (16 * h * w) == (h * 16 * w)


@pytest.mark.parametrize("use", [
    lambda h, w: h == w, lambda h, w: h != 1, lambda h, w: h < w, lambda h, w: bool(h),
    lambda h, w: hash(h), lambda h, w: int(h), lambda h, w: max(h, 2), lambda h, w: h // 2 * 0
    if False else (h + 1) // 2, lambda h, w: (h * w) // (h + w), lambda h, w: h / 2,
    lambda h, w: h + 0.5, lambda h, w: {h: 1}, lambda h, w: (8, h, w) == (8, 4, 4)])
def test_poly_refuses_what_depends_on_the_sizes(use):
    with pytest.raises(Unknown):
        use(Poly.symbol("h"), Poly.symbol("w"))


def test_symbols_bind_only_where_equal_sizes_stay_equal():
    spec = archspec.load("mobilenetv2", resolution=64)
    graph = spec.compile()
    shapes, binding = symbolic_shapes(graph)
    assert shapes["input"][1] is not shapes["input"][2]   # height and width: two symbols
    stem = "stages.0.block0.conv"
    assert shapes[stem][1] is shapes[graph.consumers(stem)[0]][1]   # equal sizes: one
    same = {n.name: n.shape for n in archspec.load("mobilenetv2", resolution=96).compile()}
    values = bind(binding, same)
    assert values[("h", 64)] == 96 and values[("h", 2)] == 3
    wide = dict(same, input=(3, 96, 97))   # only the input is 64 wide: its own symbol
    assert bind(binding, wide)[("w", 64)] == 97
    split = dict(same)
    a, b = [n for n, hs, _ in binding if hs == ("h", 32)][:2]
    split[a] = (same[a][0], 48, 48)
    split[b] = (same[b][0], 49, 48)   # nodes of one symbol differ: not bound
    assert bind(binding, split) is None


def _fused_blocks(spec, variants, latency):
    """Every block the memo fused for ``variants``: (its arguments, what it gave), and
    how many came from a spatial template's evaluation."""
    calls, replays = [], [0]
    block, fuse = latency._block, latency._fuse

    def record(key, entry, shape, after, spec_):
        found = block(key, entry, shape, after, spec_)
        calls.append(((key, entry, shape, after), found))
        return found

    def counted(*args):
        replays[0] -= 1
        return fuse(*args)

    latency._block, latency._fuse = record, counted
    memo = SweepMemo(spec)
    for v in variants:
        latency.memoised(memo, v)
    return calls, len(calls) + replays[0]


@pytest.mark.parametrize("name", ["mobilenetv3_large", "mobilenext", "rexnet",
                                  "ghostnet_100", "efficientnet_b0", "mobilenetv1"])
def test_blocks_evaluated_at_other_sizes_are_their_concrete_fusion(name, monkeypatch):
    block_memo.clear()
    spec = archspec.load(name)
    base = random_variants(4, 11, spec, resolutions=[96])
    variants = [dataclasses.replace(v, resolution=r) for v in base for r in (96, 128, 161, 224)]
    calls, replayed = _fused_blocks(spec, variants,
                                    latency_memo.SweepLatency(load(PROFILE)))
    assert replayed >= len(calls) // 2, (replayed, len(calls))
    monkeypatch.setattr(latency_memo, "template_of", lambda *args: None)   # concrete only
    concrete = latency_memo.SweepLatency(load(PROFILE))
    for (key, entry, shape, after), found in calls:
        again, template = concrete._fuse(entry, shape, key[2], key[3], after, spec)
        assert template is None and again == found, (entry.prefix, shape)


def test_a_fusion_that_reads_a_size_is_fused_concretely(monkeypatch):
    """A rule that branches on a size: the symbolic fusion refuses (Unknown), the block
    is fused concretely every time, and the predictions are the full path's."""
    add = fusion.RULES["add"]

    def by_size(fz, node):
        if fz.g[node.name].shape[1] > 1_000_000:   # never true, but a size is read
            raise AssertionError
        add(fz, node)

    monkeypatch.setitem(fusion.RULES._handlers, "add", by_size)
    block_memo.clear()
    profile = load(PROFILE)
    spec = archspec.load("mobilenetv2")
    variants = random_variants(6, 2, spec, resolutions=[96, 128])
    latency = latency_memo.SweepLatency(profile)
    fuse, templates = latency._fuse, []

    def spied(*args):
        found, template = fuse(*args)
        templates.append(template)
        return found, template

    latency._fuse = spied
    memo = SweepMemo(spec)
    for v in variants:
        graph = vary(spec, v).compile()
        full = profile.model.predict(profile.kernels(graph), graph).total_ms
        assert latency.memoised(memo, v) == full
    assert None in templates                          # blocks whose fusion meets an add
    assert any(t is not None for t in templates)      # the others keep their templates
