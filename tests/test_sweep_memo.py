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


@pytest.mark.parametrize("name", ["mobilenetv3_large", "rexnet", "mobilenext",
                                  "efficientnet_b0", "ghostnet_100"])
def test_memo_latency_equals_full_prediction(name):
    from archspec.latency.kernels import kernels
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    profile = load(PROFILE)
    spec, variants = _samples(name, n=15)
    latency, memo = SweepLatency(profile), SweepMemo(spec)
    for v in variants:
        ms = latency.memoised(memo, v)
        graph = vary(spec, v).compile()
        full = profile.model.predict(kernels(graph, profile.nchwc_block), graph).total_ms
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
    fused = latency._fuse(entry, shape, None, False, ((ops.Activation("relu"), (None,)),),
                          spec)
    assert isinstance(fused, FusedBlock) and fused.kernels
    bare = entry._replace(bid=-1, fields={**entry.fields, "bn": False, "nl": "linear"})
    crossing = latency._fuse(bare, shape, None, False,
                             ((ops.BatchNorm(channels), (None,)),), spec)
    assert not isinstance(crossing, FusedBlock)
    assert isinstance(latency._fuse(bare, shape, None, True,
                                    ((ops.BatchNorm(channels), (None,)),), spec), FusedBlock)


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
