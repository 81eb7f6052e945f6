"""Compare archspec's shipped specs named after timm/torchvision models with the models.

Two phases, each in its own venv (the reference venv has torch, timm and torchvision but
not archspec's dependencies; archspec's venv has no timm):

    /work/refvenv/bin/python benchmarks/reference_check.py measure --out refs.json \
        [--tensors DIR]
    .venv/bin/python benchmarks/reference_check.py compare refs.json [--tensors DIR] \
        [--doc docs/references.md]

``measure`` builds every reference model of PAIRS (random init, eval) and records its
parameter count, its MAdds (FlopCounterMode's total // 2) at each resolution, its batch
norm eps and how many convs pad "same" (TF style). With ``--tensors`` it also saves the
state dict, an input and the logits at 224.
``compare`` costs each spec at the same resolutions, loads the saved tensors by position
into archspec's torch model when given ``--tensors``, and writes the markdown table; it
exits 1 when any figure, eps or logit differs (the bold cells).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

# (library, reference model, archspec spec, width override or None)
PAIRS = [
    ("timm", "mobilenetv2_035", "mobilenetv2", 0.35),
    ("timm", "mobilenetv2_050", "mobilenetv2", 0.5),
    ("timm", "mobilenetv2_075", "mobilenetv2", 0.75),
    ("timm", "mobilenetv2_100", "mobilenetv2", 1.0),
    ("timm", "mobilenetv2_140", "mobilenetv2", 1.4),
    ("timm", "tf_mobilenetv3_large_100", "tf_mobilenetv3_large_100", None),
    ("timm", "tf_mobilenetv3_large_075", "tf_mobilenetv3_large_100", 0.75),
    ("timm", "tf_mobilenetv3_small_100", "tf_mobilenetv3_small_100", None),
    ("timm", "tf_mobilenetv3_small_075", "tf_mobilenetv3_small_100", 0.75),
    ("timm", "ghostnet_100", "ghostnet_100", None),
    ("timm", "efficientnet_b0", "efficientnet_b0", None),
    ("timm", "mnasnet_100", "mnasnet_100", None),
    ("timm", "efficientnet_lite0", "efficientnet_lite0", None),
    ("timm", "mixnet_s", "mixnet_s", None),
    ("timm", "lcnet_100", "lcnet_100", None),
    ("timm", "fbnetc_100", "fbnetc_100", None),
    ("timm", "tf_efficientnetv2_b0", "tf_efficientnetv2_b0", None),
    ("timm", "efficientnet_b1", "efficientnet_b1", None),
    ("timm", "efficientnet_b2", "efficientnet_b2", None),
    ("timm", "rexnet_100", "rexnet", 1.0),
    ("timm", "rexnet_130", "rexnet", 1.3),
    ("timm", "rexnet_150", "rexnet", 1.5),
    ("timm", "rexnet_200", "rexnet", 2.0),
    ("torchvision", "mobilenet_v2", "mobilenetv2", None),
    ("torchvision", "mobilenet_v3_large", "mobilenetv3_large", None),
    ("torchvision", "mobilenet_v3_small", "mobilenetv3_small", None),
    ("torchvision", "shufflenet_v2_x1_0", "shufflenet_v2_x1_0", None),
    ("torchvision", "resnet50", "resnet50", None),
]
RESOLUTIONS = (224, 160)
TENSOR_RESOLUTION = 224
LOGITS_TOL = 1e-4


# ---- measure (reference venv) -------------------------------------------------------------
def build_reference(library: str, name: str):
    """The reference model, randomly initialised, in eval mode."""
    if library == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    else:
        import torchvision

        model = torchvision.models.get_model(name, weights=None)
    return model.eval()


def reference_madds(model, resolution: int) -> int:
    """FlopCounterMode's total for one image, halved (one multiply-add is two flops)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2


def bn_eps(model) -> list[float]:
    """The distinct eps values of the model's batch norms."""
    import torch

    norms = torch.nn.modules.batchnorm._BatchNorm
    return sorted({m.eps for m in model.modules() if isinstance(m, norms)})


def save_tensors(model, path: Path) -> None:
    """The state dict, a fixed input and the model's logits on it."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(2, 3, TENSOR_RESOLUTION, TENSOR_RESOLUTION)
    with torch.no_grad():
        logits = model(x)
    torch.save({"state": model.state_dict(), "input": x, "logits": logits}, path)


def measure(out: Path, tensors: Path | None) -> None:
    import timm
    import torch
    import torchvision

    rows = []
    for library, name, _, _ in PAIRS:
        torch.manual_seed(0)
        model = build_reference(library, name)
        rows.append({"library": library, "model": name,
                     "params": sum(p.numel() for p in model.parameters()),
                     "madds": {str(r): reference_madds(model, r) for r in RESOLUTIONS},
                     "bn_eps": bn_eps(model),
                     "same_padding": sum("Same" in type(m).__name__ for m in model.modules())})
        if tensors:
            tensors.mkdir(parents=True, exist_ok=True)
            save_tensors(model, tensors / f"{library}_{name}.pt")
        print(f"{library} {name}: {rows[-1]['params']:,} params", file=sys.stderr)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "timm": timm.__version__, "python": platform.python_version()}
    out.write_text(json.dumps({"versions": versions, "models": rows}, indent=1) + "\n")


# ---- compare (archspec venv) --------------------------------------------------------------
def ours(spec_name: str, width):
    """(params, {resolution: madds}, bn eps) of the spec at each resolution."""
    import archspec

    madds = {}
    for r in RESOLUTIONS:
        spec = archspec.load(spec_name, width=width, resolution=r)
        totals = spec.cost().totals
        madds[str(r)] = totals.madds
    return totals.params, madds, spec.bn_eps


def load_by_position(model, state) -> str | None:
    """Copy the reference's tensors into ``model`` in order; None, or why it could not."""
    import torch

    theirs = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    mine = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(mine):
        return f"{len(theirs)} reference tensors, {len(mine)} ours"
    loaded = {}
    for (tk, tv), (mk, mv) in zip(theirs, mine):
        if tv.numel() != mv.numel() or tv.squeeze().shape != mv.squeeze().shape:
            return f"{tk} {tuple(tv.shape)} vs {mk} {tuple(mv.shape)}"
        loaded[mk] = tv.reshape(mv.shape).to(mv.dtype)
    with torch.no_grad():
        model.load_state_dict(loaded, strict=False)
    return None


def compare_outputs(spec_name: str, width, path: Path) -> str:
    """Max |ours - reference| of the logits relative to the reference's max |logit| (bold
    above LOGITS_TOL), and the spread between the two images' reference logits on the same
    scale, which shows how much the check can see."""
    import torch

    import archspec

    saved = torch.load(path, weights_only=True)
    model = archspec.build(archspec.load(spec_name, width=width,
                                         resolution=TENSOR_RESOLUTION)).eval()
    problem = load_by_position(model, saved["state"])
    if problem:
        return f"not loadable: {problem}"
    with torch.no_grad():
        logits = model(saved["input"]).reshape(saved["logits"].shape)
    ref = saved["logits"]
    scale = ref.abs().max()
    rel = ((logits - ref).abs().max() / scale).item()
    spread = ((ref[0] - ref[1]).abs().max() / scale).item()
    shown = f"**{rel:.1e}**" if rel > LOGITS_TOL else f"{rel:.1e}"
    return f"{shown} (spread {spread:.1e})"


def padding(spec_name: str) -> str:
    """How the spec pads its convs (its top-level `padding`)."""
    import archspec

    return archspec.load(spec_name).padding


def table_rows(refs: dict, tensors: Path | None) -> list[str]:
    """Two markdown rows (one per resolution) for each pair."""
    by_name = {(m["library"], m["model"]): m for m in refs["models"]}
    return [row for pair in PAIRS
            for row in pair_rows(pair, by_name[pair[:2]], tensors)]


def pair_rows(pair, ref: dict, tensors: Path | None) -> list[str]:
    library, name, spec_name, width = pair
    params, madds, eps = ours(spec_name, width)
    label = spec_name + (f" --width {width}" if width is not None else "")
    out = compare_outputs(spec_name, width, tensors / f"{library}_{name}.pt") if tensors else "-"
    if ref["same_padding"]:
        out += f"; reference pads 'same' (asymmetric) in {ref['same_padding']} convs, " \
               f"the spec `padding: {padding(spec_name)}`"
    eps_note = "" if ref["bn_eps"] == [eps] else ", eps **differs**"
    first = [f"{library} `{name}`", f"`{label}`",
             ", ".join(map(str, ref["bn_eps"])) + f" / {eps}", eps_note, out]
    lines = []
    for i, r in enumerate(RESOLUTIONS):
        model, spec, eps_cell, note, logits = first if i == 0 else [""] * 5
        equal = ref["params"] == params and ref["madds"][str(r)] == madds[str(r)]
        cells = [model, spec, str(r), f"{ref['params']:,}", f"{params:,}",
                 f"{ref['madds'][str(r)]:,}", f"{madds[str(r)]:,}", eps_cell,
                 ("yes" if equal else "**no**") + note, logits]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def environment(refs: dict) -> str:
    import archspec

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "?"
    v = refs["versions"]
    cpu = platform.processor() or platform.machine()
    return (f"Run {datetime.date.today().isoformat()} on {platform.system()} {cpu} "
            f"(CPU); references: torch {v['torch']}, torchvision {v['torchvision']}, "
            f"timm {v['timm']} (Python {v['python']}); archspec {archspec.__version__} at "
            f"commit {commit} (Python {platform.python_version()}{torch_version()}).")


def torch_version() -> str:
    """', torch X' for the archspec venv's torch (it runs the logits), or ''."""
    try:
        import torch
    except ImportError:
        return ""
    return f", torch {torch.__version__}"


HEADER = """# archspec vs the reference models

Generated by `benchmarks/reference_check.py` (see its docstring for the two commands):
each shipped spec named after a timm or torchvision model, costed by archspec, against
the reference model built by timm or torchvision (random init, eval). Reference params are
`sum(p.numel())`, reference MAdds are `torch.utils.flop_counter.FlopCounterMode`'s total
for one image divided by 2; ours are `archspec.load(spec, width=..., resolution=r)
.cost().totals`. *equal?* is params and MAdds both equal (and flags a batch norm eps that
differs). *logits* is max |ours - reference| / max |reference| at {res} on two random
images, with the reference's tensors loaded into `archspec.build(spec)` by position
("-": not run; bold: above {tol:.0e}); *spread* is max |logits(image 1) - logits(image 2)|
on the same scale, how far apart two inputs' outputs are under the random init.

"""


def compare(refs_path: Path, tensors: Path | None, doc: Path) -> int:
    refs = json.loads(refs_path.read_text())
    rows = table_rows(refs, tensors)
    head = ("| reference | archspec spec | res | params ref | params ours | MAdds ref | "
            "MAdds ours | BN eps ref / ours | equal? | logits |")
    text = (HEADER.format(res=TENSOR_RESOLUTION, tol=LOGITS_TOL) + environment(refs)
            + "\n\n" + head + "\n" + "|" + "---|" * 10 + "\n" + "\n".join(rows) + "\n")
    doc.write_text(text)
    print(text)
    return 1 if any("**" in row for row in rows) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    m = sub.add_parser("measure", help="measure the reference models (reference venv)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--tensors", type=Path, help="folder for state dicts, inputs, logits")
    c = sub.add_parser("compare", help="compare with archspec and write the table")
    c.add_argument("refs", type=Path)
    c.add_argument("--tensors", type=Path, help="folder written by measure --tensors")
    c.add_argument("--doc", type=Path, default=Path(__file__).parents[1] / "docs/references.md")
    args = parser.parse_args(argv)
    if args.phase == "measure":
        measure(args.out, args.tensors)
        return 0
    return compare(args.refs, args.tensors, args.doc)


if __name__ == "__main__":
    sys.exit(main())
