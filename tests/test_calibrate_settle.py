"""calibrate's extra rounds: a network whose two fastest rounds disagree is measured again
until they agree or the extra rounds run out (nothing is timed here: the measurement is
replaced by scripted wall times)."""
from __future__ import annotations

import pytest

from archspec.commands.latency import _settle_line
from archspec.latency import calibrate as cal


def scripted(monkeypatch, script: dict):
    """Replace one round's measurement of network ``g`` by the next wall time of
    ``script[g]`` (kernel time: half of it); returns the networks measured, in order."""
    calls = []

    def measure(graph, kernels, how):
        calls.append(graph)
        wall = script[graph].pop(0)
        return wall, [wall / 2], {0: 1}

    monkeypatch.setattr(cal, "_measure", measure)
    return calls


def run(rounds, tolerance=0.05, extra=2):
    kernel_rounds = [[[w / 2 for w in m]] for m in rounds]
    counts = [{0: 1} for _ in rounds]
    grown = []

    def progress(n=1):
        pass

    progress.grow = grown.append
    out = cal._settle(list(range(len(rounds))), [["k"]] * len(rounds), None, rounds,
                      kernel_rounds, counts, tolerance, extra, progress)
    return out, kernel_rounds, grown


def test_only_networks_whose_fastest_rounds_disagree_are_measured_again(monkeypatch):
    calls = scripted(monkeypatch, {1: [118.0], 2: [200.0, 300.0]})
    rounds = [[100.0, 102.0],   # 2% apart: settled
              [150.0, 120.0],   # 25%: one more round, 118 agrees with 120
              [90.0, 140.0]]    # 56%: two more rounds, both slow: still apart
    out, kernel_rounds, grown = run(rounds)
    assert calls == [1, 2, 2]
    assert grown == [2, 1]
    assert out == {"tolerance": 0.05, "max_extra_rounds": 2, "networks": 2,
                   "rounds_added": 3, "unsettled": 1}
    assert rounds == [[100.0, 102.0], [150.0, 120.0, 118.0], [90.0, 140.0, 200.0, 300.0]]
    # each kernel keeps every round's time: the fit takes the fastest
    assert kernel_rounds[2] == [[45.0, 70.0, 100.0, 150.0]]


def test_a_lucky_fast_round_needs_a_second_one_to_agree(monkeypatch):
    calls = scripted(monkeypatch, {0: [131.0, 99.0]})
    rounds = [[80.0, 130.0]]    # 80 alone: measured until a second round comes near it
    out, _, _ = run(rounds, extra=2)
    assert calls == [0, 0] and out["unsettled"] == 1   # 80 vs 99: 24% apart still
    calls = scripted(monkeypatch, {0: [131.0, 83.0]})
    rounds = [[80.0, 130.0]]
    out, _, _ = run(rounds, extra=3)
    assert calls == [0, 0] and out["unsettled"] == 0


@pytest.mark.parametrize("rounds", [[[100.0]], [[100.0, 104.9]]])
def test_one_round_or_agreeing_rounds_are_left_alone(monkeypatch, rounds):
    calls = scripted(monkeypatch, {})
    out, _, grown = run(rounds)
    assert calls == [] and grown == [] and out["rounds_added"] == 0


def test_settle_zero_adds_no_round(monkeypatch):
    """calibrate(settle=0) measures the planned rounds only, however far apart."""
    seen = {}

    def fake_settle(graphs, fused, how, medians, kernel_rounds, counts, tolerance, extra,
                    progress):
        seen["extra"] = extra
        raise RuntimeError("stop here")

    monkeypatch.setattr(cal, "_settle", fake_settle)
    monkeypatch.setattr(cal, "_measure", lambda g, k, how: (100.0, [1.0] * len(k), {}))
    monkeypatch.setattr(cal, "nchwc_block", lambda: 8)
    for settle, extra in ((0.0, 0), (0.05, 3)):
        with pytest.raises(RuntimeError):
            cal.calibrate(networks=4, rounds=3, repeats=3, settle=settle,
                          probe=lambda t: {}, reference=lambda t, b: 1.0)
        assert seen["extra"] == extra


def test_the_summary_line():
    line = _settle_line({"tolerance": 0.05, "max_extra_rounds": 4, "networks": 30,
                         "rounds_added": 41, "unsettled": 3})
    assert line == ("measured again: 30 networks whose two fastest rounds were more than "
                    "5% apart (41 rounds added); 3 still apart after 4 more rounds (a "
                    "busy machine)")
    assert _settle_line({"tolerance": 0.05, "max_extra_rounds": 4, "networks": 2,
                         "rounds_added": 2, "unsettled": 0}).endswith("all agree now")


def test_kernels_come_from_the_rounds_near_the_fastest():
    walls = [100.0, 104.0, 150.0]
    kernels = [[50.0, 49.0, 30.0], [10.0, 11.0, 9.0]]   # the slow round's kernels read low
    assert cal._fastest_kernels(walls, kernels, 0.05) == [49.0, 10.0]
    assert cal._fastest_kernels(walls, kernels, 0.0) == [30.0, 9.0]   # every round


def test_a_calibration_settles_its_networks_and_records_it(monkeypatch):
    """Through calibrate() with the measurement scripted: extra rounds where the two
    fastest disagree, walls the fastest of all rounds, the between-round spread that of
    the planned rounds, and the record in the raw file and the fitted profile."""
    import statistics

    from archspec.latency import fitting
    from archspec.latency.probes import PROBE_KERNELS

    probe = {k: 1.0 for k in PROBE_KERNELS}
    walls = {0: [100.0, 101.0], 1: [100.0, 130.0, 102.0], 2: [100.0, 100.0],
             3: [150.0, 100.0, 160.0, 170.0]}
    graphs = cal.calibration_graphs(4, 0, 0)
    index = {id(g): i for i, g in enumerate(graphs)}
    monkeypatch.setattr(cal, "calibration_graphs", lambda n, v, seed: graphs)
    monkeypatch.setattr(cal, "nchwc_block", lambda: 8)
    calls = []

    def measure(graph, kernels, how):
        i = index[id(graph)]
        calls.append(i)
        wall = walls[i][sum(c == i for c in calls) - 1] * 10   # us
        return wall, [0.5 * wall / len(kernels)] * len(kernels), {j: 1 for j in
                                                                   range(len(kernels))}

    monkeypatch.setattr(cal, "_measure", measure)
    raw = cal.calibrate(networks=4, rounds=2, repeats=4, probe=lambda t: probe,
                        reference=lambda t, b: 1.0)
    assert calls == [0, 1, 2, 3] * 2 + [1, 3, 3]
    assert [len(m) for m in raw["wall_rounds"]] == [2, 3, 2, 4]
    assert raw["walls"] == [1000.0] * 4
    planned = [(max(w[:2]) - min(w[:2])) / statistics.median(w[:2]) for w in walls.values()]
    assert raw["round_spread_median"] == round(statistics.median(planned), 4)
    assert raw["settle"] == {"tolerance": 0.05, "max_extra_rounds": 2, "networks": 2,
                             "rounds_added": 3, "unsettled": 1}
    assert fitting.build(raw, n_trees=0).calibration["settle"] == raw["settle"]
    # settle 0: the planned rounds only, as before
    calls.clear()
    raw = cal.calibrate(networks=4, rounds=2, repeats=4, probe=lambda t: probe,
                        reference=lambda t, b: 1.0, settle=0)
    assert calls == [0, 1, 2, 3] * 2 and raw["settle"]["rounds_added"] == 0


def test_the_progress_bar_grows_with_the_extra_rounds():
    from archspec.commands.latency import _bar

    progress, advance = _bar(10, "calibrating", quiet=False)
    with progress:
        advance(3)
        advance.grow(5)
        assert (progress.tasks[0].total, progress.tasks[0].completed) == (15, 3)
    assert not hasattr(_bar(10, "x", quiet=True)[1], "grow")


def test_settle_is_refused_with_from_raw(tmp_path):
    import subprocess
    import sys

    raw = tmp_path / "raw.json"
    raw.write_text("{}")
    out = subprocess.run([sys.executable, "-m", "archspec", "calibrate", "--from-raw",
                          str(raw), "--settle", "0.1", "-o", str(tmp_path / "p.json")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--settle" in out.stderr
    assert not (tmp_path / "p.json").exists()
