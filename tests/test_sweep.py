"""sweep and plot: variants equal `cost` of the same overrides; the Pareto front is right."""
import json

import archspec
import pytest

from archspec.analysis.sweep import (Variant, evaluate, grid, objectives, pareto, random_variants,
                                     run, shortfall, vary)
from archspec.errors import ArchspecError
from conftest import run_cli


def test_variant_totals_equal_cost():
    spec = archspec.load("mobilenetv2")
    row = evaluate(spec, Variant(width=0.75, resolution=160), memory=True)
    report = archspec.load("mobilenetv2", width=0.75, resolution=160).cost()
    assert row["params"] == report.totals.params and row["madds"] == report.totals.madds
    assert row["peak_bytes"] == report.peak_bytes


def test_expansion_and_alpha_variants():
    spec = archspec.load("mobilenetv2")
    t4 = vary(spec, Variant(t=4))
    assert [r.fields["t"] for r in t4.stages if "t" in r.fields] == [1, 4, 4, 4, 4, 4, 4]
    assert evaluate(spec, Variant(t=4))["madds"] < evaluate(spec, Variant())["madds"]
    mnx = archspec.load("mobilenext")
    assert evaluate(mnx, Variant(alpha=0.5))["params"] == evaluate(mnx, Variant())["params"]


def test_schedule_end_variant():
    rex = archspec.load("rexnet")
    assert evaluate(rex, Variant(schedule_end=180))["params"] < evaluate(rex, Variant())["params"]


def test_grid_and_random():
    assert len(grid([0.5, 1.0], [96, 128, 160])) == 6
    spec = archspec.load("mobilenetv3_small")
    a = random_variants(20, 3, spec)
    assert a == random_variants(20, 3, spec) and a != random_variants(20, 4, spec)
    assert all(0.35 <= v.width <= 1.4 for v in a)


def _network(spec, v) -> tuple:
    return tuple((n.name, n.op, n.shape) for n in vary(spec, v).compile())


def test_random_variants_are_distinct_networks():
    spec = archspec.load("mobilenetv2")
    vs = random_variants(300, 0, spec)
    assert len(vs) == 300
    assert len({_network(spec, v) for v in vs}) == 300


def test_random_variants_say_when_the_space_is_smaller():
    spec = archspec.load("mobilenetv1")
    every = {_network(spec, Variant(width=k / 1000, resolution=r))
             for k in range(500, 601) for r in (128, 160)}
    vs = random_variants(1000, 0, spec, widths=[0.5, 0.6], resolutions=[128, 160])
    assert len({_network(spec, v) for v in vs}) == len(vs) == len(every) < 1000
    assert f"only {len(every):,} distinct networks" in shortfall(1000, vs)
    assert shortfall(len(vs), vs) == ""
    few = random_variants(len(every) - 1, 0, spec, widths=[0.5, 0.6], resolutions=[128, 160])
    assert len({_network(spec, v) for v in few}) == len(every) - 1


def test_default_front_keeps_resolution_as_capacity():
    spec = archspec.load("mobilenetv2")
    rows = run(spec, grid([0.35, 0.5, 0.75, 1.0, 1.4], [96, 128, 160, 192, 224]), workers=1)
    old = [r["resolution"] for r, f in zip(rows, pareto(rows, ["madds"], ["params"])) if f]
    assert set(old) == {96}
    front = [r for r, f in zip(rows, pareto(rows)) if f]
    assert {r["resolution"] for r in front} == {96, 128, 160, 192, 224}
    assert {r["width"] for r in front} == {0.35, 0.5, 0.75, 1.0, 1.4}


def test_pareto_with_resolution_by_hand():
    rows = [{"madds": 1, "params": 1, "resolution": 96},
            {"madds": 2, "params": 1, "resolution": 128},
            {"madds": 2, "params": 1, "resolution": 96},
            {"madds": 3, "params": 2, "resolution": 96}]
    assert pareto(rows) == [True, True, False, True]
    assert pareto([{"madds": 1, "params": 1}, {"madds": 2, "params": 1}]) == [True, False]


def test_objectives_checked():
    assert objectives("madds", "params,resolution") == (["madds"], ["params", "resolution"])
    assert objectives("madds,peak_bytes", "", memory=True) == (["madds", "peak_bytes"], [])
    for mins, maxs, needle in (("flops", "params", "unknown figure 'flops'"),
                               ("peak_bytes", "", "peak_bytes with --memory"),
                               ("", "params", "--minimize: name at least one")):
        with pytest.raises(ArchspecError, match=needle):
            objectives(mins, maxs)


def test_parallel_equals_serial():
    spec = archspec.load("mobilenetv3_small")
    vs = random_variants(80, 0, spec)
    counts = []
    assert run(spec, vs, workers=2, progress=counts.append) == run(spec, vs, workers=1)
    assert sum(counts) == len(vs) and all(n > 0 for n in counts)


def test_pareto_by_hand():
    rows = [{"madds": 1, "params": 1}, {"madds": 2, "params": 3}, {"madds": 2, "params": 2},
            {"madds": 3, "params": 3}, {"madds": 4, "params": 5}]
    assert pareto(rows) == [True, True, False, False, True]
    assert pareto(rows, minimize=["madds", "params"], maximize=[]) == \
        [True, False, False, False, False]


def test_sweep_cli(tmp_path):
    out, png = tmp_path / "s.jsonl", tmp_path / "p.png"
    r = run_cli("sweep", "mobilenetv2", "--width", "0.5,1.0", "--resolution", "96,224",
                "-o", out, "--plot", png, "-f", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(r["pareto"] for r in rows) >= 1
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(r.stdout)["evaluated"] == 4


def test_sweep_budget_and_errors(tmp_path):
    r = run_cli("sweep", "mobilenetv2", "--width", "0.5,1.4", "--budget", "params<=5M")
    assert r.returncode == 1 and "1 of 2 variants over budget" in r.stderr
    r = run_cli("sweep", "mobilenetv2", "--width", "0.5,abc")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("sweep", "mobilenetv2", "--width", "0.5", "--minimize", "flops")
    assert r.returncode == 2 and "unknown figure" in r.stderr


def test_plot_cli(tmp_path):
    svg = tmp_path / "d.svg"
    r = run_cli("plot", "mobilenetv2", "mobilenext", "-o", svg)
    assert r.returncode == 0, r.stderr
    assert svg.read_text().lstrip().startswith("<?xml")
    r = run_cli("plot", "mobilenetv2", "-o", tmp_path / "d.gif")
    assert r.returncode == 2 and "unknown plot format" in r.stderr


def test_pareto_equals_the_definition_on_random_rows():
    """The sort-and-sweep fronts (2 and 3 objectives, ties and duplicates included) and
    the general one (4) equal the definition checked pair by pair."""
    import random

    rng = random.Random(3)
    for trial in range(300):
        k, n, top = 1 + trial % 4, rng.randint(0, 30), rng.choice([2, 4, 1000])
        names = [f"o{j}" for j in range(k)]
        rows = [{name: rng.randint(0, top) for name in names} for _ in range(n)]
        mins, maxs = names[::2], names[1::2]
        points = [tuple([r[m] for m in mins] + [-r[m] for m in maxs]) for r in rows]
        expected = [not any(all(a <= b for a, b in zip(q, p)) and q != p for q in points)
                    for p in points]
        assert pareto(rows, mins, maxs) == expected, (rows, mins, maxs)


def test_a_sweep_leaves_the_garbage_collector_as_it_found_it():
    import gc

    spec = archspec.load("mobilenetv3_small")
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    run(spec, [Variant(width=0.5), Variant(width=0.75)], workers=1)
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == frozen


def test_random_sweep_of_a_spec_that_cannot_take_the_default_sizes_says_what_to_pass():
    """The Cityscapes LR-ASPP's 49x49 gate does not fit at 96-224 px: the error names the
    default sizes and --resolution, not a --resolution the user never gave."""
    r = run_cli("sweep", "lraspp_mobilenetv3_small_cityscapes", "--random", "3")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("archspec: --random: without --resolution the sizes are drawn")
    assert "pass --resolution" in r.stderr and "1024x2048" in r.stderr
    assert "command line: --resolution" not in r.stderr
