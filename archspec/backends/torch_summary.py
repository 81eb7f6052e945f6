"""``archspec build --summary``: the module tree with each layer's cost-table row."""
from __future__ import annotations

from ..analysis.cost import CostReport
from ..ir.dispatch import OpTable
from ..ir.graph import Graph
from .common import live_nodes, outputs_for

HEADER = ("module", "layer", "output", "params", "MAdds")


def summary(model, graph: Graph, report: CostReport) -> str:
    """One line per module and container of ``model`` (layers the model leaves out, such
    as the head of a features model, are skipped), with params and MAdds from ``report``."""
    features = (getattr(model, "meta", {}).get("archspec") or {}).get("features")
    live = _needed(graph, features)
    layers = [e for e in report.layers if e.name in live]
    groups = _groups(layers)
    modules = dict(model.named_modules())
    rows, seen = [], set()
    for e in layers:
        parts = e.name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in seen:
                seen.add(prefix)
                g = groups[prefix]
                rows.append((depth - 1, parts[depth - 1], _container(modules.get(prefix)),
                             g["shape"], g["params"], g["madds"]))
        node = graph[e.name]
        rows.append((len(parts) - 1, parts[-1], LABELS[node.kind](node, modules.get(e.name)),
                     e.shape, e.params, e.madds))
    params = sum(e.params for e in layers)
    madds = sum(e.madds for e in layers)
    outs = outputs_for(graph, features)
    single = list(outs) == ["output"]
    rows.append((0, "total", "", graph[outs["output"]].shape if single else "", params, madds))
    named = [] if single else [(1, name, f"output <- {node}", graph[node].shape, None, None)
                               for name, node in outs.items()]
    return _table(rows, named, f"{graph.name}: {params:,} params, {madds:,} MAdds (batch "
                               f"{report.batch}, input {_shape(graph[graph.inputs[0]].shape)})")


def _needed(graph: Graph, features) -> set[str]:
    return live_nodes(graph, outputs_for(graph, features).values())


def _groups(layers) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for e in layers:
        parts = e.name.split(".")
        for depth in range(1, len(parts)):
            g = groups.setdefault(".".join(parts[:depth]), {"params": 0, "madds": 0})
            g["params"] += e.params
            g["madds"] += e.madds
            g["shape"] = e.shape
    return groups


def _container(module) -> str:
    if module is None:
        return ""
    label = getattr(module, "label", "")
    return f"{type(module).__name__}({label})" if label else type(module).__name__


# ---- the layer column: one handler per op kind, (node, module or None) -> text ------------
LABELS = OpTable("torch summary")


@LABELS.register("conv2d")
def _conv(node, module) -> str:
    op = node.op
    extra = "dw" if op.groups == op.in_channels == op.out_channels else \
        (f"g={op.groups}" if op.groups > 1 else "")
    parts = [f"{op.in_channels}->{op.out_channels}", f"{op.kernel}x{op.kernel}",
             f"s{op.stride}", extra, f"d{op.dilation}" if op.dilation > 1 else "",
             "bias" if op.bias else "", "same" if op.pad_mode == "same" else ""]
    return "Conv2d " + " ".join(p for p in parts if p)


@LABELS.register("batchnorm", "activation", "global_pool", "flatten", "linear", "dropout",
                 "avg_pool", "max_pool", "resize")
def _module(node, module) -> str:
    if module is None:
        return node.kind
    return type(module).__name__ + ("(inplace)" if getattr(module, "inplace", False) else "")


@LABELS.register("add")
def _add(node, module) -> str:
    return "add (partial)" if node.op.partial else "add"


@LABELS.register("replicate")
def _replicate(node, module) -> str:
    return f"replicate to {node.op.out_channels}"


@LABELS.register("slice")
def _slice(node, module) -> str:
    return f"slice {node.op.start}:{node.op.stop}"


@LABELS.register("concat")
def _concat(node, module) -> str:
    return "cat"


@LABELS.register("channel_shuffle")
def _channel_shuffle(node, module) -> str:
    return f"channel shuffle g={node.op.groups}"


@LABELS.register("anchor_flatten")
def _anchor_flatten(node, module) -> str:
    return f"anchor flatten K={node.op.per_anchor}"


@LABELS.register("input", "mul")
def _kind(node, module) -> str:
    return node.kind


def _shape(shape) -> str:
    return "x".join(map(str, shape)) if shape else ""


def _table(rows, named, title: str) -> str:
    """``rows`` end with the total; ``named`` (the outputs, when not one ``output``) follow
    it."""
    cells = [(("  " * depth) + name, layer, _shape(shape), _count(params), _count(madds))
             for depth, name, layer, shape, params, madds in [*rows, *named]]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADER)]
    right = {3, 4}

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    rule = "-" * len(line(HEADER))
    body = len(rows) - 1
    return "\n".join([title, line(HEADER), rule, *map(line, cells[:body]), rule,
                      *map(line, cells[body:])]) + "\n"


def _count(n) -> str:
    return "" if n is None else f"{n:,}"
