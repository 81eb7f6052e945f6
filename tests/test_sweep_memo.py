"""The per-block memo of sweeps (analysis/memo.py, latency/memo.py) gives the rows of a full
compile: cost figures equal to the unit, predicted latency equal to the last bit, on random
samples of several specs; where a block needs more than its input, the full path is used."""
from pathlib import Path

import archspec
import pytest

from archspec import compiler
from archspec.analysis import memo as block_memo
from archspec.analysis.memo import Cache, SweepMemo
from archspec.analysis.sweep import Variant, evaluate, random_variants, run, vary
from archspec.ir import ops

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "cpu-ort-1t.json"
# fit rules 6 on (9 since 2026-12-04): conv taps, the activation pass, layout fallback,
# blocked concats and replicates, blocked BN activations (what the legacy one lacks)
PROFILE_RULES6 = Path(__file__).resolve().parents[1] / "profiles" / "cpu-ort-1t-xeon.json"
SPECS = ("mobilenetv3_large", "mobilenetv3_small", "rexnet", "mobilenext", "ghostnet_100",
         "efficientnet_b0", "mobilenetv2")


def _samples(name: str, n: int = 25, seed: int = 7) -> tuple:
    spec = archspec.load(name)
    variants = random_variants(n, seed, spec, resolutions=[96, 128, 160])
    if spec.schedule:
        variants += [Variant(width=w, resolution=128, schedule_end=e)
                     for w, e in ((0.8, 150), (1.3, 200))]
    return spec, variants


@pytest.mark.parametrize("name", SPECS)
def test_memo_rows_equal_full_compile(name):
    block_memo.clear()
    spec, variants = _samples(name)
    memo = SweepMemo(spec)
    for v in variants:
        row = memo.evaluate(v)
        assert row is not None, v
        full = evaluate(spec, v)
        assert row == full and list(row) == list(full), v
        assert all(type(row[k]) is type(full[k]) for k in full)
    again = [memo.evaluate(v) for v in variants]   # from the memo this time
    assert again == [evaluate(spec, v) for v in variants]


@pytest.mark.parametrize("name", ["mobilenext", "rexnet"])
def test_memo_rows_when_expansion_or_alpha_is_a_field_scaling_reads(name, monkeypatch):
    """A variant's expansion or alpha on a field that scaling reads re-walks the changed
    row (compiler.walk_blocks on that row alone): the rows are still a full compile's."""
    block_memo.clear()
    monkeypatch.setattr(SweepMemo, "_reads", lambda self, row: frozenset({"t", "alpha"}))
    spec, variants = _samples(name, n=12)
    memo = SweepMemo(spec)
    assert [memo.evaluate(v) for v in variants] == [evaluate(spec, v) for v in variants]


def test_walk_blocks_of_some_rows_are_those_of_the_whole_walk():
    spec = archspec.load("rexnet", width=0.9)   # a channel schedule: rows take from it
    whole = list(compiler.walk_blocks(spec))
    rows = spec.stages + spec.head
    for picked in ({0}, {3, 4}, {len(rows) - 1}, set(range(len(rows)))):
        some = list(compiler.walk_blocks(spec, picked))
        assert some == [b for b in whole if rows.index(b[0]) in picked]
        assert {rows.index(b[0]) for b in some} == picked


@pytest.mark.parametrize("name,path", [
    ("mobilenetv3_large", PROFILE), ("rexnet", PROFILE), ("mobilenext", PROFILE),
    ("efficientnet_b0", PROFILE), ("ghostnet_100", PROFILE),
    ("mobilenetv2", PROFILE_RULES6), ("mixnet_s", PROFILE_RULES6),
    ("mobilenetv2_cifar", PROFILE_RULES6), ("resnet50", PROFILE_RULES6),
    # replicates: blocked (rules 8) and reordered (the legacy profile)
    ("mobilenetv2_replication_d", PROFILE_RULES6), ("mobilenetv2_replication_d", PROFILE)])
def test_memo_latency_equals_full_prediction(name, path):
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    profile = load(path)
    spec, variants = _samples(name, n=15)
    latency, memo = SweepLatency(profile), SweepMemo(spec)
    for v in variants:
        ms = latency.memoised(memo, v)
        graph = vary(spec, v).compile()
        full = profile.model.predict(profile.kernels(graph), graph).total_ms
        assert ms == full, v


def test_run_with_and_without_memo_in_workers():
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    spec, variants = _samples("mobilenetv3_small", n=70)
    latency = SweepLatency(load(PROFILE))
    fast = run(spec, variants, workers=2, extra=latency)
    assert fast == run(spec, variants, workers=1, memo=False, extra=latency)
    assert all("latency_ms" in r for r in fast)


def test_evaluator_survives_pickling():
    """Workers started by spawn (macOS, Windows) receive the evaluator pickled."""
    import pickle

    from archspec.analysis.sweep import Evaluator
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    spec, variants = _samples("mobilenetv3_small", n=4)
    evaluator = Evaluator(spec, extra=SweepLatency(load(PROFILE)))
    rows = [evaluator(v) for v in variants]
    assert [pickle.loads(pickle.dumps(evaluator))(v) for v in variants] == rows


def test_a_block_that_reads_the_graph_is_compiled_in_full(monkeypatch):
    block_memo.clear()
    spec, variants = _samples("mobilenetv2", n=3)
    real = compiler.lower_block

    def reads_meta(graph, *args):
        graph.meta.get("resolution")
        return real(graph, *args)

    monkeypatch.setattr(compiler, "lower_block", reads_meta)
    memo = SweepMemo(spec)
    assert all(memo.evaluate(v) is None for v in variants)
    assert run(spec, variants, workers=1) == [evaluate(spec, v) for v in variants]


def test_a_kernel_across_blocks_is_predicted_from_the_full_graph():
    """A block ending in a bare conv read by a batch norm alone: the norm folds into the
    conv, so that kernel crosses the boundary and the memo gives up."""
    from archspec.latency.memo import FusedBlock, SweepLatency
    from archspec.latency.profile import load

    spec = archspec.load("mobilenetv1")
    memo, latency = SweepMemo(spec), SweepLatency(load(PROFILE))
    entry = memo.plan(Variant(width=0.5))[0]   # the stem: conv + bn + act
    shape = memo.input_shape(96)
    graph, out = block_memo.lower_alone(entry, shape, spec)
    channels = graph[out].shape[0]
    fused, _ = latency._fuse(entry, shape, None, False,
                             ((ops.Activation("relu"), (None,)),), spec)
    assert isinstance(fused, FusedBlock) and fused.kernels
    bare = entry._replace(bid=-1, fields={**entry.fields, "bn": False, "nl": "linear"})
    crossing, _ = latency._fuse(bare, shape, None, False,
                                ((ops.BatchNorm(channels), (None,)),), spec)
    assert not isinstance(crossing, FusedBlock)
    assert isinstance(latency._fuse(bare, shape, None, True,
                                    ((ops.BatchNorm(channels), (None,)),), spec)[0],
                      FusedBlock)


def test_memo_given_up_where_variants_share_few_blocks():
    """ReXNet's schedule gives every random width its own channels: after a hundred
    variants the evaluator compiles in full; MobileNetV3's rounded channels keep it."""
    from archspec.analysis.sweep import Evaluator

    for name, kept in (("rexnet", False), ("mobilenetv3_large", True)):
        block_memo.clear()
        spec = archspec.load(name)
        variants = random_variants(130, 3, spec)
        evaluator = Evaluator(spec)
        rows = [evaluator(v) for v in variants]
        assert (evaluator.memo is not None) == kept, name
        assert rows[-5:] == [evaluate(spec, v) for v in variants[-5:]]


def test_cache_keeps_the_recently_used():
    cache = Cache(4)
    for k in range(3):
        cache.put(k, str(k))
    assert cache.get(0) == "0"          # used: survives the turnover
    for k in range(3, 8):
        cache.put(k, str(k))
    assert len(cache) <= 4 and cache.get(7) == "7" and cache.get(1) is None


def test_registry_generation_renews_plans(monkeypatch):
    spec = archspec.load("mobilenetv3_small")
    memo = SweepMemo(spec)
    before = memo.plan(Variant(width=0.75))
    monkeypatch.setattr(block_memo.BLOCKS, "generation", block_memo.BLOCKS.generation + 1)
    after = memo.plan(Variant(width=0.75))
    assert [e.fields for e in after] == [e.fields for e in before]
    assert not {e.bid for e in after} & {e.bid for e in before}


def _lowered_cost(entry, shape, spec):
    """What block_cost should give: the block lowered alone on ``shape`` and costed."""
    from archspec.analysis.cost import totals

    graph, out = block_memo.lower_alone(entry, shape, spec)
    t = totals(graph)
    return (graph[out].shape, t.params, t.buffers, t.madds, t.elementwise, len(graph) - 1,
            block_memo.consumers(graph, "input"))


def _structure(graph, out) -> list:
    """A graph's nodes without their names (a block's memo is shared by its repeats,
    which differ in their names only): ops, shapes, inputs and readers by position."""
    at = {n.name: i for i, n in enumerate(graph)}
    return [(n.op, n.shape, n.block_type, [at[i] for i in n.inputs],
             [at[c] for c in graph.consumers(n.name)]) for n in graph] + [at[out]]


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3_large", "ghostnet_100",
                                  "mobilenext"])
def test_blocks_replayed_at_other_sizes_cost_what_their_lowering_does(name, monkeypatch):
    """Each block of a variant, first lowered at one input size, then costed at others
    from its template (replayed ops): the figures of lowering it there, to the unit."""
    block_memo.clear()
    spec = archspec.load(name)
    memo = SweepMemo(spec)
    replayed = []
    real = block_memo._replay_cost
    monkeypatch.setattr(block_memo, "_replay_cost",
                        lambda *a: replayed.append(real(*a)) or replayed[-1])
    for entry, shape, _ in memo.chain(Variant(width=0.85, resolution=160, t=4)
                                      if name != "ghostnet_100" else Variant(width=0.85)):
        for side in (1, 2, 5, 7, 33, 64):
            at = (shape[0], side, side)
            got = block_memo.block_cost(entry, at, spec)
            try:
                expected = _lowered_cost(entry, at, spec)
            except Exception:   # noqa: BLE001 -- the block does not fit: neither gives one
                expected = None
            assert (got is None and expected is None) or \
                (*got[:6], got.consumers) == expected, (entry.prefix, at)
            if got is not None:   # the graph latency's fusion takes: the lowering's
                graph, out = block_memo.take_lowered(entry, at, spec)
                lowered, lowered_out = block_memo.lower_alone(entry, at, spec)
                assert _structure(graph, out) == _structure(lowered, lowered_out)
    assert sum(r is not None for r in replayed) > 0.8 * len(replayed) > 0


def test_a_replay_whose_shape_test_differs_is_lowered_again(monkeypatch):
    """A lowering that decides on a comparison of shapes (here: an extra activation when
    a stride-2 block keeps its map's size, as it does on a 1x1 map) is replayed only
    where the recorded comparison gives the same answer; a lowering that reads a height
    itself is replayed at that height only."""
    block_memo.clear()
    spec = archspec.load("mobilenetv2")
    real = compiler.lower_block

    def kept_size(graph, row, fields, x, prefix, stage, spec_):
        out = real(graph, row, fields, x, prefix, stage, spec_)
        if graph[x].shape[1:] == graph[out].shape[1:]:
            out = graph.add(f"{prefix}.kept", ops.Activation("relu"), [out])
        return out

    monkeypatch.setattr(compiler, "lower_block", kept_size)
    memo = SweepMemo(spec)
    entry, shape, _ = next(c for c in memo.chain(Variant(width=0.5, resolution=96))
                           if c[0].fields.get("s") == 2 and c[0].key_name == "ir")
    replayed = []
    real_replay = block_memo._replay_cost
    monkeypatch.setattr(block_memo, "_replay_cost",
                        lambda *a: replayed.append(real_replay(*a)) or replayed[-1])
    sides = (16, 8, 1, 2, 12)
    got = [block_memo.block_cost(entry, (shape[0], s, s), spec) for s in sides]
    for s, c in zip(sides, got):
        assert (*c[:6], c.consumers) == _lowered_cost(entry, (shape[0], s, s), spec), s
    assert [c.nodes - got[0].nodes for c in got] == [0, 0, 1, 0, 0]
    # 16 and 8: replayed from the template the chain left; 1: refused (its map keeps its
    # size), lowered; 2: refused (1's template), lowered; 12: replayed from 2's
    assert [r is not None for r in replayed] == [True, True, False, False, True]

    block_memo.clear()
    replayed.clear()

    def by_height(graph, row, fields, x, prefix, stage, spec_):
        out = real(graph, row, fields, x, prefix, stage, spec_)
        return graph.add(f"{prefix}.tall", ops.Activation("relu"), [out]) \
            if graph[x].shape[1] > 4 else out

    monkeypatch.setattr(compiler, "lower_block", by_height)
    got = [block_memo.block_cost(entry, (shape[0], s, s), spec) for s in (16, 8, 3)]
    for s, c in zip((16, 8, 3), got):
        assert (*c[:6], c.consumers) == _lowered_cost(entry, (shape[0], s, s), spec), s
    assert [c.nodes - got[-1].nodes for c in got] == [1, 1, 0]
    assert replayed == [None, None]   # a height read is a value: no other height replays


def test_probe_records_each_use_of_a_shape():
    log = []
    x = block_memo._probe((8, 4, 4), ("x", ()), log)
    y = block_memo._probe((8, 2, 2), ("y", ()), log)
    assert x[0] == 8 and (x[1:] == y[1:]) is False and (x[1:] != y[1:]) is True
    assert len(x) == 3 and tuple(x) == (8, 4, 4) and f"{y}" == "(8, 2, 2)"
    assert (1,) + x[1:] == (1, 4, 4) and hash(x) == hash((8, 4, 4))
    spatial = ("x", ((1, None, None),))
    assert log[:4] == [("at", ("x", ()), 0, 8),
                       ("eq", spatial, ("y", ((1, None, None),)), False),
                       ("eq", spatial, ("y", ((1, None, None),)), False),
                       ("len", ("x", ()), 3)]
    assert ("value", ("y", ()), (8, 2, 2)) in log and ("value", spatial, (4, 4)) in log
    shapes = {"x": (8, 4, 4), "y": (8, 2, 2)}
    assert all(block_memo._holds(shapes, r) for r in log)
    assert not all(block_memo._holds({"x": (8, 4, 4), "y": (8, 4, 4)}, r) for r in log)


def test_a_shape_kept_in_an_op_makes_no_template(monkeypatch):
    """A lowering that keeps a shape it read: as a plain value (Resize copies its size) it
    is a use of the whole value, so other sizes are lowered again; as the watched shape
    itself (an Input op holding it) the block gets no template at all."""
    spec = archspec.load("mobilenetv2")
    real = compiler.lower_block
    replayed = []
    real_replay = block_memo._replay_cost
    monkeypatch.setattr(block_memo, "_replay_cost",
                        lambda *a: replayed.append(real_replay(*a)) or replayed[-1])

    def resized(graph, row, fields, x, prefix, stage, spec_):
        out = real(graph, row, fields, x, prefix, stage, spec_)
        return graph.add(f"{prefix}.resize", ops.Resize(graph[x].shape[1:]), [out])

    def kept(graph, row, fields, x, prefix, stage, spec_):
        graph.add(f"{prefix}.kept", ops.Input(graph[x].shape))
        return real(graph, row, fields, x, prefix, stage, spec_)

    for lowering, templates in ((resized, 1), (kept, 0)):
        block_memo.clear()
        replayed.clear()
        monkeypatch.setattr(compiler, "lower_block", lowering)
        entry = SweepMemo(spec).plan(Variant(width=0.5))[2]
        for side in (16, 8, 4):
            at = (24, side, side)
            c = block_memo.block_cost(entry, at, spec)
            assert (*c[:6], c.consumers) == _lowered_cost(entry, at, spec)
        assert len(block_memo._TEMPLATES) == templates
        assert replayed == [None, None][:2 * templates]


def _random_tree(rng, features: int, depth: int, leaf_chance: float):
    feat, thr, left, right, value = [], [], [], [], []

    def node(d):
        i = len(feat)
        feat.append(0), thr.append(0.0), left.append(-1), right.append(-1)
        value.append(rng.uniform(-1, 1))
        if d < depth and (d == 0 or rng.random() > leaf_chance):
            feat[i], thr[i] = rng.randrange(features), rng.choice([0.0, 0.5, rng.gauss(0, 1)])
            left[i] = node(d + 1)
            right[i] = node(d + 1)
        return i

    node(0)
    return [feat, thr, left, right, value]


@pytest.mark.parametrize("depth", [1, 4, 9])
def test_forest_boosts_the_floats_of_the_models_own_loop(depth):
    """Forest.boost (complete trees, or walked node by node beyond MAX_DEPTH) against
    latency.model.boost on random trees with leaves at every depth and random rows,
    NaN, infinities and features equal to a threshold among them."""
    import random

    import numpy as np

    from archspec.latency.memo import Forest
    from archspec.latency.model import boost

    rng = random.Random(depth)
    trees = {"learning_rate": 0.1, "offset": 0.3,
             "trees": [_random_tree(rng, 5, depth, 0.3) for _ in range(40)]}
    rows = [[rng.choice([0.0, 0.5, rng.gauss(0, 1), float("nan"), float("inf"),
                         -float("inf")]) for _ in range(5)] for _ in range(300)]
    forest = Forest(trees, net=2)
    assert forest.boost(np.array(rows)) == [boost(trees, x) for x in rows]
    if forest.coded:   # a kernel's own bits, then the network's (feature 2)
        for x_net in (0.0, 0.5, -1.3, 2.0):
            some = np.array(rows[:50])
            some[:, 2] = x_net
            bits = forest.static_bits(some)
            assert forest.boost_bits(bits, forest.net_bits(x_net)) == \
                [boost(trees, list(x)) for x in some]
