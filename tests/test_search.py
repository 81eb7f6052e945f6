"""archspec search: space files (located errors), variants written back as specs that
cost what the search recorded, a tiny search with a training proxy on digits, and two
worker processes sharing one study (nothing lost, nothing run twice)."""
from __future__ import annotations

import json
import os
import random

import pytest

from conftest import ROOT, run_cli

pytest.importorskip("optuna")

PROFILE = ROOT / "profiles" / "cpu-ort-1t.json"
SPACE = """\
variables:
  width: {low: 0.25, high: 0.5, step: 0.125}
  resolution: [16, 24]
  t: {rows: [2, 3], values: [3, 6]}
  c: {rows: [4], values: [24, 32], shared: true}
"""


def _space(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_variants_written_back_cost_what_they_were_measured_at(tmp_path):
    pytest.importorskip("torch")
    import archspec
    from archspec.analysis.cost import totals
    from archspec.search.space import check_space, load_space
    from archspec.spec.loader import loads

    space, base = load_space(_space(tmp_path)), archspec.load("mobilenetv2_cifar")
    check_space(space, base)
    assert space.names() == ["width", "resolution", "stages[2].t", "stages[3].t", "c"]
    rng = random.Random(0)
    for _ in range(6):
        values = {v.name: rng.choice(v.candidates()) for v in space.variables}
        spec = space.apply(base, values)
        written = loads(space.text(base, values, "v"))
        assert totals(written.compile()) == totals(spec.compile())
        model = archspec.build(written, backend="torch")
        assert sum(p.numel() for p in model.parameters()) == totals(spec.compile()).params
        row = next(r for r in written.stages if r.index == 2)
        assert row.fields["t"] == values["stages[2].t"]


@pytest.mark.parametrize("text, where, words", [
    ("variables:\n  width: {low: 0.5, hgh: 1.0}\n", ":2:", "unknown key 'hgh'"),
    ("variables:\n  k: [3, 5]\n", ":2:", "name the rows"),
    ("variables:\n  k: {rows: [40], values: [3]}\n", ":2:", "past the end"),
    ("variables:\n  kk: {rows: [2], values: [3]}\n", ":2:", "no field 'kk'"),
    ("variables:\n  width: {low: 1.0, high: 0.5}\n", ":2:", "below `high`"),
    ("variables:\n  c: {rows: [2], values: [-8]}\n", ":2:", "c=-8"),
])
def test_a_bad_space_file_is_a_located_error(tmp_path, text, where, words):
    path = _space(tmp_path, text)
    r = run_cli("search", "mobilenetv2_cifar", "--space", path, "-n", "1", "-o",
                tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert f"{path}{where}" in r.stderr and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_tiny_search_with_a_training_proxy_on_digits(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    r = run_cli("search", "mobilenetv2_cifar", "--space", _space(tmp_path), "-n", "3",
                "--minimize", "madds", "--proxy", "train", "--data", "digits",
                "--limit-batches", "2", "--batch", "32", "-o", out, "-f", "json",
                env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "archspec.search/1" and doc["complete"] == 3
    assert [o["name"] for o in doc["objectives"]] == ["madds", "accuracy"]
    rows = json.loads((out / "trials.json").read_text())
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    for spec_path in doc["written"]["specs"]:
        trial = int(spec_path.rsplit("_t", 1)[1].split(".")[0])
        row = next(r for r in rows if r["trial"] == trial)
        cost = json.loads(run_cli("cost", spec_path, "-f", "json").stdout)
        assert (cost["totals"]["params"], cost["totals"]["madds"]) == \
            (row["params"], row["madds"])
    assert (out / "front.png").stat().st_size > 0
    assert (out / "trials.csv").read_text().startswith("trial,")


def test_two_workers_share_one_study(tmp_path):
    """Two worker processes on one sqlite study: every trial is there once, each run by
    one worker; a second command on the same storage adds its trials to the same study."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ("search", "mobilenetv2_cifar", "--space", _space(tmp_path), "--storage", url,
            "--study-name", "s", "-p", PROFILE, "--minimize", "latency_ms,madds",
            "-o", tmp_path / "out", "--no-plot")
    r = run_cli(*args, "-n", "8", "--workers", "2")
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="s", storage=url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    r = run_cli(*args, "-n", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(t.number for t in study.get_trials()) == list(range(11))
    rows = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert sorted(r["trial"] for r in rows) == list(range(11))


def test_reward_needs_a_profile_and_a_proxy(tmp_path):
    r = run_cli("search", "mobilenetv2_cifar", "--space", _space(tmp_path),
                "--target-ms", "1", "-o", tmp_path / "out")
    assert r.returncode == 2 and "--target-ms" in r.stderr


def test_mnas_reward():
    from archspec.search.objectives import reward

    assert reward(0.75, 10.0, 10.0) == 0.75
    assert reward(0.75, 20.0, 10.0, -0.07) == pytest.approx(0.75 * 2 ** -0.07)


@pytest.mark.parametrize("command", ["search", "adapt", "rank"])
def test_help(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "--format" in r.stdout, r.stderr


# ---- review findings (issue 19): user mistakes exit 2 with a one-line message ------------
@pytest.mark.parametrize("text, words", [
    ("variables:\n  c: {rows: [4], values: [24, 32], shared: maybe}\n", "`shared` is true"),
    ("variables:\n  c: {rows: [4], values: [24, 32], shared: 7}\n", "`shared` is true"),
    ("variables:\n  width: {low: 0.5, high: 1.0, log: \"false\"}\n", "`log` is true"),
    ("variables:\n  c: {rows: [4, 4], values: [24, 32]}\n", "lists a row twice"),
    ("variables:\n  width: {low: .nan, high: 1.0}\n", "not a finite number"),
    ("", "the space file is empty"),
])
def test_space_file_checks(tmp_path, text, words):
    from archspec.errors import SpecError
    from archspec.search.space import load_space

    path = _space(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_space(path)
    assert str(e.value).startswith(f"{path}:") and words in str(e.value), str(e.value)


@pytest.mark.parametrize("url", ["foo://bar", "sqlite:////nonexistent/dir/x.db",
                                 "postgresql://u@localhost/db", "mysql+pymysql://u@h/db",
                                 "", "DIR"])
def test_a_storage_that_does_not_open_names_the_option(tmp_path, url):
    from archspec.errors import ArchspecError
    from archspec.search.study import _storage

    with pytest.raises(ArchspecError) as e:
        _storage(str(tmp_path) if url == "DIR" else url)
    assert str(e.value).startswith("--storage") and "\n" not in str(e.value)


def _search(tmp_path, *args, space=None, spec="mobilenetv2_cifar"):
    return run_cli("search", *([spec] if spec else []), "--space", space or
                   _space(tmp_path), "-n", "1", "--no-plot", *args)


@pytest.mark.parametrize("args, words", [
    (("--storage", "foo://bar"), "--storage foo://bar"),
    (("--proxy", "train", "--data", "foo:bar"), "--data foo:bar"),
    (("--proxy", "train", "--data", "cifar10:/nonexistent"), "--data cifar10:/nonexistent"),
    (("-p", "GARBAGE"), "not a readable profile"),
    (("-o", "AFILE"), "not a directory"),
])
def test_bad_options_are_refused_before_the_study_starts(tmp_path, args, words):
    (tmp_path / "garbage.pth").write_bytes(b"\x80junk")
    (tmp_path / "afile").write_text("x")
    args = [{"GARBAGE": tmp_path / "garbage.pth", "AFILE": tmp_path / "afile"}.get(a, a)
            for a in args]
    out = [] if "-o" in args else ["-o", tmp_path / "out"]
    r = _search(tmp_path, *args, *out)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_a_study_of_another_space_or_spec_is_refused(tmp_path):
    out = ("-o", tmp_path / "out", "--study-name", "s")
    assert _search(tmp_path, *out).returncode == 0
    other = _space(tmp_path, "variables:\n  width: [0.25, 0.5]\n")
    r = _search(tmp_path, *out, space=other)
    assert r.returncode == 2 and "another space file" in r.stderr, r.stderr
    r = _search(tmp_path, *out, spec=_copy_spec(tmp_path))
    assert r.returncode == 2 and "searches spec mobilenetv2_cifar" in r.stderr, r.stderr


def _copy_spec(tmp_path):
    from archspec.spec.loader import SHIPPED

    path = tmp_path / "other.yaml"
    path.write_text((SHIPPED / "mobilenetv2_cifar.yaml").read_text())
    return path


def test_a_spec_the_space_names_that_is_missing_is_blamed_on_the_space(tmp_path):
    space = _space(tmp_path, "spec: nonexistent\nvariables:\n  width: [0.5, 1.0]\n")
    r = _search(tmp_path, "-o", tmp_path / "out", space=space, spec=None)
    assert r.returncode == 2 and r.stderr.startswith(f"{space}:1:7: spec: 'nonexistent'"), r.stderr


def test_when_no_trial_completes_the_search_says_why(tmp_path):
    """Every trial fails (the rank proxy at a resolution the head does not fit): exit 2
    with the first failure's message, blamed on the proxy, no traceback per trial."""
    pytest.importorskip("torch")
    space = _space(tmp_path, "variables:\n  width: [0.5, 0.75]\n")
    r = _search(tmp_path, "--proxy", "rank", "--proxy-resolution", "64", "-o",
                tmp_path / "out", space=space, spec="lraspp_mobilenetv3_small_cityscapes")
    assert r.returncode == 2, r.stderr
    assert "no trial completed (1 failed)" in r.stderr and "rank proxy at 64 px" in r.stderr
    assert "Traceback" not in r.stderr and "command line" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_rank_proxy_default_resolution_fits_the_spec():
    pytest.importorskip("torch")
    import archspec
    from archspec.search.proxies import RankProxy

    spec = archspec.load("lraspp_mobilenetv3_small_cityscapes")
    with pytest.raises(archspec.errors.ArchspecError):
        spec.with_(resolution=64).compile()
    moved = RankProxy(resolution=64, fit=True).at_resolution(spec)
    moved.compile()
    assert 64 < moved.resolution <= spec.resolution
    with pytest.raises(archspec.errors.ArchspecError):
        moved.with_(resolution=moved.resolution - 32).compile()


def test_shipped_example_space_checks_against_its_spec():
    import archspec
    from archspec.search.space import check_space, load_space

    space = load_space(ROOT / "examples" / "mobilenetv3_small.space.yaml")
    check_space(space, archspec.load(space.spec))
    assert space.names() == ["width", "resolution", "stages[4].k", "stages[9].k", "t"]


def test_a_value_that_does_not_compile_is_blamed_on_the_space_variable(tmp_path):
    space = _space(tmp_path, "variables:\n  resolution: [64, 96]\n")
    r = _search(tmp_path, "-o", tmp_path / "out", space=space,
                spec="lraspp_mobilenetv3_small_cityscapes")
    assert r.returncode == 2 and r.stderr.startswith(f"{space}:2:"), r.stderr
    assert "resolution=64" in r.stderr and "<string>" not in r.stderr, r.stderr
    assert "command line" not in r.stderr, r.stderr
