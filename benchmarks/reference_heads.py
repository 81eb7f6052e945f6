"""Compare archspec's detection and segmentation specs with torchvision's models of the
same names: parameters, MAdds at two input sizes, and the outputs with torchvision's
tensors loaded by position.

Two phases, each in its own venv (as benchmarks/reference_check.py):

    /work/refvenv/bin/python benchmarks/reference_heads.py measure --out heads.json \
        --tensors DIR
    .venv/bin/python benchmarks/reference_heads.py compare heads.json --tensors DIR

``measure`` builds each torchvision model (random init, no pretrained backbone, eval),
randomises its batch norms' running statistics (so a wrong eps or a swapped statistic
shows in the outputs), records its parameter count and its MAdds (FlopCounterMode's total
// 2 over backbone and head, one image) at each size, and saves its state dict, a fixed
input and the outputs torchvision computes before post-processing: SSDLite's head
``{"bbox_regression", "cls_logits"}``, the segmentation models' ``{"out"}``.
``compare`` costs each spec at the same sizes, loads the saved tensors into archspec's
torch model by position, runs the same input and prints one line per figure; it exits 1
when a figure differs or an output is off by more than OUTPUT_TOL (relative).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

# (torchvision model, archspec spec, the sizes to count MAdds at, the size of the outputs)
MODELS = [
    ("ssdlite320_mobilenet_v3_large", "ssdlite320_mobilenet_v3_large", (320, 288), 320),
    ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large", (520, 256), 256),
    ("deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", (520, 256), 256),
]
OUTPUT_TOL = 1e-4


# ---- measure (reference venv) -------------------------------------------------------------
def build_reference(name: str):
    """The torchvision model without pretrained weights (SSDLite then has the reduced
    tail, as its COCO weights do), random BN statistics, in eval mode."""
    import torch
    import torchvision

    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def raw_outputs(model, x) -> dict:
    """What torchvision computes before post-processing: SSD's head outputs (its transform,
    anchors and box decoding left out), a segmentation model's forward."""
    if hasattr(model, "anchor_generator"):
        features = list(model.backbone(x).values())
        return model.head(features)
    return dict(model(x))


def reference_madds(model, size: int) -> int:
    """FlopCounterMode's total for one image over backbone and head, halved."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        raw_outputs(model, torch.randn(1, 3, size, size))
    return counter.get_total_flops() // 2


def measure(out: Path, tensors: Path) -> None:
    import torch
    import torchvision

    rows = []
    tensors.mkdir(parents=True, exist_ok=True)
    for name, _, sizes, size in MODELS:
        torch.manual_seed(0)
        model = build_reference(name)
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                     "madds": {str(s): reference_madds(model, s) for s in sizes}})
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            outputs = raw_outputs(model, x)
        torch.save({"state": model.state_dict(), "input": x, "outputs": outputs},
                   tensors / f"{name}.pt")
        print(f"{name}: {rows[-1]['params']:,} params", file=sys.stderr)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "python": platform.python_version()}
    out.write_text(json.dumps({"versions": versions, "models": rows}, indent=1) + "\n")


# ---- compare (archspec venv) --------------------------------------------------------------
def load_by_position(model, state) -> str | None:
    """Copy the reference's tensors into ``model`` in order; None, or why it could not."""
    import torch

    theirs = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    mine = [(k, v) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(mine):
        return f"{len(theirs)} reference tensors, {len(mine)} ours"
    for (tk, tv), (mk, mv) in zip(theirs, mine):
        if tv.shape != mv.shape:
            return f"{tk} {tuple(tv.shape)} vs {mk} {tuple(mv.shape)}"
    with torch.no_grad():
        model.load_state_dict({mk: tv for (_, tv), (mk, _) in zip(theirs, mine)},
                              strict=False)
    return None


def output_errors(spec_name: str, size: int, path: Path) -> dict[str, float] | str:
    """Per output: max |ours - torchvision| / max |torchvision|; or why it did not run."""
    import torch

    import archspec

    saved = torch.load(path, weights_only=True)
    model = archspec.build(archspec.load(spec_name, resolution=size)).eval()
    problem = load_by_position(model, saved["state"])
    if problem:
        return f"not loadable: {problem}"
    with torch.no_grad():
        ours = model(saved["input"])
    errors = {}
    for key, ref in saved["outputs"].items():
        if key not in ours or ours[key].shape != ref.shape:
            return f"output {key}: {tuple(ref.shape)} vs " \
                   f"{tuple(ours[key].shape) if key in ours else 'missing'}"
        errors[key] = ((ours[key] - ref).abs().max() / ref.abs().max()).item()
    return errors


def compare(refs_path: Path, tensors: Path) -> int:
    import archspec

    refs = {m["model"]: m for m in json.loads(refs_path.read_text())["models"]}
    failed = False
    for name, spec_name, sizes, size in MODELS:
        ref = refs[name]
        for s in sizes:
            totals = archspec.load(spec_name, resolution=s).cost().totals
            ok = totals.params == ref["params"] and totals.madds == ref["madds"][str(s)]
            failed |= not ok
            print(f"{spec_name} at {s}: params {totals.params:,} (torchvision "
                  f"{ref['params']:,}), MAdds {totals.madds:,} (torchvision "
                  f"{ref['madds'][str(s)]:,}) {'equal' if ok else 'DIFFER'}")
        errors = output_errors(spec_name, size, tensors / f"{name}.pt")
        bad = isinstance(errors, str) or max(errors.values()) > OUTPUT_TOL
        failed |= bad
        shown = errors if isinstance(errors, str) else \
            ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        print(f"{spec_name} outputs at {size} with torchvision's tensors: {shown}"
              f"{' ABOVE ' + format(OUTPUT_TOL, '.0e') if bad else ''}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    m = sub.add_parser("measure", help="measure torchvision's models (reference venv)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--tensors", type=Path, required=True)
    c = sub.add_parser("compare", help="compare with archspec (archspec's venv)")
    c.add_argument("refs", type=Path)
    c.add_argument("--tensors", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.phase == "measure":
        measure(args.out, args.tensors)
        return 0
    return compare(args.refs, args.tensors)


if __name__ == "__main__":
    sys.exit(main())
