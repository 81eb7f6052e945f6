"""Property-based tests: valid documents always compile and cost; mutated documents
always give a located SpecError, never another exception.

(hypothesis-jsonschema 0.23 does not run with the current hypothesis release, so valid
documents come from the strategies below, which follow archspec/spec/schema.json.)
"""
import math
import os
import signal
import subprocess
import sys
import textwrap

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import SpecError

NL = st.sampled_from(["relu", "relu6", "RE", "HS", "hswish", "swish", "SW", "linear"])
FUZZ = settings(max_examples=int(os.environ.get("ARCHSPEC_FUZZ_EXAMPLES", 1500)),
                deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def rows(draw):
    res = draw(st.sampled_from([32, 48, 64, 96, 128, 224]))
    max_down = int(math.log2(res)) - 1
    n_rows = draw(st.integers(1, 8))
    out, downs = [], 0
    out.append({"block": "conv", "c": draw(st.integers(1, 64)), "k": 3,
                "s": 2 if draw(st.booleans()) and downs < max_down else 1})
    downs += out[0]["s"] == 2
    for _ in range(n_rows):
        s = 2 if draw(st.booleans()) and downs < max_down else 1
        downs += s == 2
        kind = draw(st.sampled_from(["ir", "bneck", "conv", "dwsep"]))
        row = {"block": kind, "c": draw(st.integers(1, 200)), "s": s,
               "n": draw(st.integers(1, 3)), "k": draw(st.sampled_from([1, 3, 5, 7])),
               "nl": draw(NL)}
        if kind == "ir":
            row["t"] = draw(st.sampled_from([1, 2, 3, 4, 6, 2.5]))
        if kind == "bneck":
            row["exp"] = draw(st.integers(8, 400))
            row["se"] = draw(st.booleans())
        if kind == "dwsep":
            row.pop("nl")
        out.append(row)
    head = [{"block": "pool"}, {"block": "classifier", "dropout": draw(st.sampled_from([0, 0.2]))}]
    return {"name": "fuzz", "input": {"resolution": res, "channels": draw(st.integers(1, 4))},
            "classes": draw(st.integers(1, 1000)),
            "width": draw(st.sampled_from([0.35, 0.5, 0.75, 1.0, 1.3])),
            "stages": out, "head": head}


@FUZZ
@given(rows())
def test_valid_documents_compile_and_cost(doc):
    spec = archspec.loads(yaml.safe_dump(doc), "fuzz.yaml")
    report = spec.cost()
    assert report.totals.params > 0 and report.totals.madds > 0
    assert sum(e.params for e in report.layers) == report.totals.params
    assert report.peak_bytes > 0


BASE = textwrap.dedent("""\
    name: base
    input: {resolution: 64, channels: 3}
    classes: 10
    width: 1.0
    defaults: {nl: relu6}
    stages:
      columns: [block, t, c, n, s]
      rows:
        - [conv, -, 32, 1, 2]
        - [ir, 1, 16, 1, 1]
        - [ir, 6, 24, 2, 2]
        - [bneck, -, 40, 1, 2]
    head:
      - {block: conv, k: 1, c: 128}
      - {block: pool}
      - {block: classifier, dropout: 0.2}
    """)

SCALARS = st.one_of(st.integers(-10**13, 10**13), st.floats(allow_nan=True),
                    st.sampled_from(["-", "~", "yes", "irr", "HS", ".nan", ".inf", "[", "]", "{",
                                     "}", ":", "&a", "*a", "!!python/object", "\t", "", "'",
                                     '"', "#", "- ", "<<: *a"]),
                    st.text(max_size=6))


@st.composite
def mutated(draw):
    text = BASE
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace_token", "delete", "insert", "dup_line", "drop_line"]))
        if op == "replace_token":
            tokens = [t for t in text.replace(",", " ").replace("[", " ").replace("]", " ")
                      .replace("{", " ").replace("}", " ").split() if t]
            old = draw(st.sampled_from(tokens))
            new = str(draw(SCALARS))
            i = text.find(old, draw(st.integers(0, max(0, len(text) - 1))))
            if i < 0:
                i = text.find(old)
            text = text[:i] + new + text[i + len(old):]
        elif op == "delete":
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        elif op == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + str(draw(SCALARS)) + text[i:]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            lines = lines[:i] + ([lines[i]] if op == "dup_line" else []) + lines[i:] \
                if op == "dup_line" else lines[:i] + lines[i + 1:]
            text = "".join(lines)
    return text


@FUZZ
@given(mutated())
def test_mutated_documents_compile_or_fail_with_location(text):
    try:
        archspec.loads(text, "mut.yaml").cost()
    except SpecError as e:
        assert e.problems
        for p in e.problems:
            assert p.location.file == "mut.yaml" and p.message
            assert p.location.line >= 1 and p.location.column >= 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    from archspec.spec.loader import build_spec
    from archspec.spec.yamlio import parse_yaml

    try:
        build_spec(parse_yaml(data, "bytes.yaml")).compile()
    except SpecError:
        pass


def test_interrupted_write_leaves_old_file_or_none(tmp_path):
    """Kill a process in the middle of an atomic write: the target holds the old bytes."""
    target = tmp_path / "out.json"
    target.write_text("OLD")
    code = textwrap.dedent(f"""
        import os, sys, time
        from archspec.fsutil import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as f:
                f.write("NEW" * 1000)
                f.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_text() == "OLD"
    # the killed run leaves at most a hidden temp file, never a half-written target
    assert all(p.name.startswith(".out.json.") for p in tmp_path.iterdir() if p != target)


def test_interrupted_cli_output_keeps_old_file(tmp_path):
    """An exception mid-write (here: SIGINT raised inside the write) removes the temp file."""
    from archspec.fsutil import atomic_path

    target = tmp_path / "cost.json"
    target.write_text("OLD")
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert target.read_text() == "OLD" and list(tmp_path.iterdir()) == [target]


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 5))  # three compiles per failure
@given(rows(), st.one_of(st.none(), st.floats(0.01, 16)), st.one_of(st.none(), st.integers(1, 300)))
def test_overrides_of_a_valid_document_are_blamed_for_what_they_break(doc, width, resolution):
    """A document that compiles by itself can only fail because of an override, so every
    problem must be located at one (issue 14: they used to point at a row of the file)."""
    spec = archspec.loads(yaml.safe_dump(doc), "fuzz.yaml")
    try:
        spec.with_(width=width, resolution=resolution).compile()
    except SpecError as e:
        assert e.problems
        for p in e.problems:
            assert p.location.file == "keyword argument", str(p)
            assert p.location.path in {f"{k}=" for k, v in (("width", width),
                                                              ("resolution", resolution)) if v}


VALID = BASE.replace("[bneck, -, 40, 1, 2]", "[ir, 6, 40, 1, 2]")
MISTAKES = {  # one independent mistake each: (text to replace, replacement, path blamed)
    "top key": ("classes: 10", "classes: 10\nclases: 10", "clases"),
    "second top key": ("name: base", "name: base\nnmae: base", "nmae"),
    "nan width": ("width: 1.0", "width: .nan", "width"),
    "input": ("channels: 3}", "channels: 3, depth: 1}", "input.depth"),
    "defaults": ("{nl: relu6}", "{nl: relu6, k: 4}", "defaults.k"),
    "row block": ("[ir, 1, 16", "[ri, 1, 16", "stages[1].block"),
    "row cells": ("[ir, 6, 24, 2, 2]", "[ir, 6, 24, 2, 2, 9]", "stages[2]"),
    "row number": ("[ir, 6, 40, 1, 2]", "[ir, 6, 40, 0, 2]", "stages[3].n"),
    "head field": ("{block: pool}", "{block: pool, k: 3}", "head[1].k"),
    "head block": ("{block: classifier,", "{block: clasifier,", "head[2].block"),
}


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(sorted(MISTAKES)), min_size=1))
def test_every_mistake_in_a_file_is_reported(names):
    """Independent mistakes anywhere in a file are all reported, and nothing else."""
    text = VALID
    for name in names:
        old, new, _ = MISTAKES[name]
        text = text.replace(old, new, 1)
    try:
        archspec.loads(text, "bad.yaml").cost()
    except SpecError as e:
        assert {p.location.path for p in e.problems} == {MISTAKES[n][2] for n in names}, str(e)
        assert all(p.location.line for p in e.problems)
    else:
        raise AssertionError("no problem reported")


def test_the_valid_base_of_the_mistakes_is_valid():
    assert archspec.loads(VALID, "valid.yaml").cost().totals.params > 0
