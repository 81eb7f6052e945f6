"""Raw calibration measurements (JSON, schema ``archspec.latency-raw/1``): what
``calibrate --save-raw`` writes and ``calibrate --from-raw`` refits.

The file is self-contained. Besides the samples (per kernel: network, type, us), the
walls and the settings, it records **what was measured**: the IR graph of every
calibration network (``networks_ir``), compactly -- per node its op kind, the op's field
values and its inputs as back-offsets; node names are not kept (fusion and features do
not read them), taps and outputs are. A refit rebuilds the graphs from that record and
recomputes every kernel's features with this archspec's fusion rules (for the ``batch``
measured: 1 when a file does not record it), so neither a new
shipped spec nor a change to a spec's rules moves the networks under the samples. A
file written before the record existed is read by rebuilding the networks from their
seeds and the specs as they are now (once: ``save_raw(load_raw(p), p)`` writes the
record in).

:func:`digest` is the link a profile keeps to the measurements it was fitted on: a
SHA-256 over the settings, samples, walls, overheads and recorded networks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

from ..errors import ArchspecError

RAW_SCHEMA = "archspec.latency-raw/1"
IR_FORMAT = "archspec.ir-compact/1"
DIGEST_KEYS = ("networks", "variants", "seed", "threads", "nchwc_block", "l2_bytes",
               "walls", "overhead")


# ---- the record of the measured networks ---------------------------------------------------
def _node_row(node, index: dict[str, int], i: int) -> list:
    offsets = [i - index[x] for x in node.inputs]
    values = [list(v) if isinstance(v, tuple) else v
              for v in (getattr(node.op, f.name) for f in dataclasses.fields(node.op))]
    return [offsets[0] if len(offsets) == 1 else offsets, node.kind, *values]


def graph_record(graph) -> dict:
    """One network as a compact JSON-ready record (see the module docstring)."""
    index = {n.name: i for i, n in enumerate(graph)}
    return {"name": graph.name,
            "meta": {k: v for k, v in graph.meta.items() if k != "file"},
            "nodes": [_node_row(n, index, i) for i, n in enumerate(graph)],
            "outputs": {k: index[v] for k, v in graph.outputs.items()},
            "taps": {k: index[v] for k, v in graph.taps.items()}}


def networks_record(graphs, source: str) -> dict:
    """The ``networks_ir`` entry of a raw file: the op fields per kind, then every graph.
    ``source``: how the graphs were obtained (measured, or rebuilt for an older file)."""
    from ..ir.ops import OPS

    kinds = sorted({n.kind for g in graphs for n in g})
    return {"format": IR_FORMAT, "source": source,
            "ops": {k: [f.name for f in dataclasses.fields(OPS[k])] for k in kinds},
            "graphs": [graph_record(g) for g in graphs]}


def _op(kind: str, values: list, fields: dict):
    from ..ir.ops import OPS

    if kind not in OPS or kind not in fields:
        raise ValueError(f"op kind {kind!r} is unknown to this archspec or the record")
    names = fields[kind]
    if len(values) != len(names):
        raise ValueError(f"{kind}: {len(values)} values for fields {names}")
    known = {f.name for f in dataclasses.fields(OPS[kind])}
    if not set(names) <= known:
        raise ValueError(f"{kind}: recorded fields {names}, this archspec's {sorted(known)}")
    return OPS[kind](**{n: tuple(v) if isinstance(v, list) else v
                        for n, v in zip(names, values)})


def graph_from_record(rec: dict, fields: dict):
    """The :class:`~archspec.ir.graph.Graph` a record describes (nodes named ``n<i>``)."""
    from ..ir.graph import Graph

    g = Graph(rec["name"], rec.get("meta", {}))
    for i, row in enumerate(rec["nodes"]):
        offsets = [row[0]] if isinstance(row[0], int) else row[0]
        if any(not 0 < o <= i for o in offsets):
            raise ValueError(f"node {i} of {rec['name']} reads a node that is not before it")
        g.add(f"n{i}", _op(row[1], row[2:], fields), [f"n{i - o}" for o in offsets])
    for target, names in ((g.outputs, rec["outputs"]), (g.taps, rec.get("taps", {}))):
        for k, v in names.items():
            if f"n{v}" not in g:
                raise ValueError(f"{rec['name']}: output or tap {k!r} names no node")
            target[k] = f"n{v}"
    return g


def networks_from_record(record: dict) -> list:
    if record.get("format") != IR_FORMAT:
        raise ValueError(f"networks_ir format {record.get('format')!r}, expected {IR_FORMAT!r}")
    return [graph_from_record(r, record["ops"]) for r in record["graphs"]]


# ---- the file ------------------------------------------------------------------------------
def sample_rows(raw: dict) -> list[dict]:
    """The samples as the file keeps them (times to 0.1 ns: what a refit reads)."""
    return [{"net": s["net"], "type": s["type"], "us": round(float(s["us"]), 4)}
            for s in raw["samples"]]


def digest(raw: dict) -> str:
    """SHA-256 of the measurements and the networks they were taken on (see the module
    docstring); equal for the measured dict and for the file written from it."""
    doc = {k: raw.get(k) for k in DIGEST_KEYS}
    if "partial_add" in raw:   # what the networks were lowered with (files since 2026-12-02)
        doc["partial_add"] = raw["partial_add"]
    if "batch" in raw:         # the images per run (files since batch became a setting)
        doc["batch"] = raw["batch"]
    if raw.get("backend", "onnxruntime") != "onnxruntime":   # torch eager (2026-12-03)
        doc["backend"] = raw["backend"]
    if raw.get("denormals"):   # flushed while timing (files since 2026-12-03 evening)
        doc["denormals"] = raw["denormals"]
    if "fusion" in raw:        # the kernels the samples were attributed to (fit rules 9 on)
        doc["fusion"] = raw["fusion"]
    doc["samples"] = [[s["net"], s["type"], s["us"]] for s in sample_rows(raw)]
    doc["networks_ir"] = raw["networks_ir"]["graphs"]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_raw(raw: dict, path) -> None:
    """Write :func:`~archspec.latency.calibrate.calibrate`'s measurements (atomically)."""
    from ..fsutil import atomic_path

    doc = {"schema": RAW_SCHEMA, **raw, "samples": sample_rows(raw)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")))


def _read(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ArchspecError(f"{path}: cannot read raw measurements: {e}") from None
    if not isinstance(raw, dict) or raw.get("schema") != RAW_SCHEMA:
        raise ArchspecError(f"{path}: not raw calibration measurements "
                            f"(schema {RAW_SCHEMA!r} expected; see calibrate --save-raw)")
    return raw


def _rebuilt_from_seeds(raw: dict) -> list:
    """An older file's networks, rebuilt from its seeds and the specs as they are now."""
    from .. import __version__
    from .networks import calibration_graphs

    networks, variants = int(raw["networks"]), int(raw.get("variants", 0))
    if networks < 0 or variants < 0 or networks + variants > 100_000:
        raise ValueError(f"{networks} networks + {variants} variants")
    # the random networks' sampling plan: a file that does not record it drew version 1
    graphs = calibration_graphs(networks, variants, int(raw["seed"]),
                                sampler=int(raw.get("sampler", 1)))
    raw["networks_ir"] = networks_record(
        graphs, f"rebuilt from the seeds and the shipped specs of archspec {__version__} "
                "(the file predates the record)")
    return graphs


def partial_add_lowering(raw: dict) -> str:
    """How the measured ONNX files spelled MobileNeXt's partial add: ``masked`` when the
    file says so, ``concat`` (slice + add + concat) for a file from before the masked
    lowering (2026-12-02), which did not record it."""
    return raw.get("partial_add", "concat")


def raw_backend(raw: dict) -> str:
    """What ran the measurements: onnxruntime (files before torch calibration did not
    record it) or torch."""
    from .kernels import BACKENDS

    backend = raw.get("backend", "onnxruntime")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: one of {', '.join(BACKENDS)} expected")
    return backend


def raw_batch(raw: dict) -> int:
    """The images per run the measurements were taken with (1 for a file from before
    ``calibrate --batch``, which did not record it)."""
    batch = raw.get("batch", 1)
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch {batch!r}: a positive integer expected")
    return batch


def raw_fusion(raw: dict) -> dict:
    """The fusion flags that chose which IR nodes each measured kernel covered
    (:func:`~archspec.latency.kernels.kernels`' ``blocked_bn_acts``): as the file records
    them (``fusion``), false for a file from before fit rules 9, which did not record
    them. (``blocked_concat`` and ``blocked_replicate`` change only a kernel's features,
    which a refit recomputes: they are the fitting rules' to choose.)"""
    fusion = raw.get("fusion", {})
    if not isinstance(fusion, dict) or type(fusion.get("blocked_bn_acts", False)) is not bool:
        raise ValueError(f"fusion {fusion!r}: {{'blocked_bn_acts': true or false}} expected")
    return {"blocked_bn_acts": fusion.get("blocked_bn_acts", False)}


def _matches(graphs, samples, block: int, networks: int, variants: int,
             partial_add: str = "masked", backend: str = "onnxruntime",
             fusion: dict | None = None):
    """Every network's kernels, if they are the samples' kernels (count, order, type)."""
    from .kernels import backend_kernels

    if len(graphs) != networks + variants:
        return None
    kernels = [(i, k) for i, g in enumerate(graphs)
               for k in backend_kernels(g, backend, block, partial_add, **(fusion or {}))]
    ok = len(kernels) == len(samples) and all(
        i == s["net"] and k.type == s["type"] and float(s["us"]) >= 0
        for (i, k), s in zip(kernels, samples))
    return kernels if ok else None


def load_raw(path) -> dict:
    """Measurements saved by :func:`save_raw`, with every kernel's features recomputed
    from the recorded networks (or, for an older file, from the networks rebuilt from
    their seeds, whose record is then added to the returned dict), fused as the file's
    kernels were (:func:`raw_fusion`; the other fusion flags this archspec's); an error
    if the networks' kernels are not the measured ones."""
    from .profile import fingerprint_well_formed

    raw = _read(path)
    try:
        networks, variants = int(raw["networks"]), int(raw.get("variants", 0))
        block, samples = int(raw["nchwc_block"]), raw["samples"]
        batch = raw_batch(raw)
        if not isinstance(samples, list) or not samples or not raw["walls"]:
            raise ValueError("no samples or no walls")
        float(raw["seconds"])
        # a refit copies the fingerprint into the profile: a broken one would make a
        # profile that cannot be read
        if raw.get("fingerprint") and not fingerprint_well_formed(raw["fingerprint"]):
            raise ValueError("broken machine fingerprint (kernels: name -> us, env and, "
                             "if present, network.ms > 0 expected)")
        if "networks_ir" in raw:
            graphs = networks_from_record(raw["networks_ir"])
        else:
            graphs = _rebuilt_from_seeds(raw)
        kernels = _matches(graphs, samples, block, networks, variants,
                           partial_add_lowering(raw), raw_backend(raw), raw_fusion(raw))
    except ArchspecError as e:
        raise ArchspecError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ArchspecError(f"{path}: malformed raw measurements ({type(e).__name__}: "
                            f"{e})") from None
    if kernels is None:
        raise ArchspecError(f"{path}: the calibration networks "
                            f"({raw['networks_ir']['source']}) do not match these "
                            "measurements (kernel counts or types differ under this "
                            "archspec's fusion rules): recalibrate")

    for (_, k), s in zip(kernels, samples):
        s["features"] = k.features(batch)   # for the batch measured
    return raw
