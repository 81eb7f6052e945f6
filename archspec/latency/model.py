"""The latency model: per kernel type, time = a + b*MACs + c*elements read + d*elements
written + e*weights + f*elements reordered (non-negative coefficients), plus a per-model
overhead ``a0 + b0 * kernels`` (fitted as the median of the per-kernel overhead).

Kernel times come from onnxruntime's profiler, which costs time of its own and sees each
kernel out of context. A second stage corrects for that on whole networks: per kernel
family (``conv.pw``, ``conv.dw``, ``se``, ``add``, ...), ``us' = scale * us + shift``, and
a per-model constant, fitted (ridge towards scale 1, shift 0) to the *unprofiled* wall
times of the calibration networks.

Kernel types are hierarchical (``conv.dw.k5s2.c`` -> ``conv.dw.k5s2`` -> ``conv.dw`` ->
``conv``); a type seen fewer than ``MIN_SAMPLES`` times in calibration is predicted by its
nearest fitted ancestor, and a kernel with no fitted ancestor by the ``*`` model fitted on
everything. Fitting minimises *relative* squared error (every sample weighs the same,
small kernels included), drops samples more than ``OUTLIER_REL`` off a first fit and
refits once.

Prediction is plain Python (no numpy): ``archspec cost --profile`` stays light.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field


FEATURES = ("one", "macs", "in_elems", "out_elems", "params", "reorder_elems", "spill_1",
            "spill_2", "act_elems", "edge_macs", "pass_elems")
SCALES = (1.0, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6)   # per million
# "act_elems": the elements a kernel writes through an activation dearer than a clip
# (ACT_CLASS >= 2: hswish, hsigmoid, sigmoid, ...; onnxruntime fuses them into the conv,
# which then computes them per output element), so relu6 and hswish networks differ by
# a fitted cost per element. Profiles fitted before it existed read the first 8 features
# (their coefficient for it is 0: they predict as they always did).
# "edge_macs" (fit rules 4 on, models that say ``conv_taps``): a blocked full or grouped
# conv's MACs split as onnxruntime's NCHWc conv computes them (latency.kernels.conv_taps):
# ``macs`` counts the interior outputs' taps over the kernel rows inside the input,
# ``edge_macs`` the taps inside the input of the outputs whose window crosses the padding
# (a slower loop); the taps in the padding are not computed. Other kernels: macs as they
# are, edge_macs 0. Older models read macs whole and have no coefficient for edge_macs.
# "pass_elems" (fit rules 5 on, models that say ``act_pass``): the elements a conv writes
# whose activation onnxruntime applies in a pass of its own (latency.kernels
# .activation_pass: in its blocked convs every activation but ReLU, relu6 included), for
# every conv type. act_elems stays what it was (the dearer activations' extra in
# depthwise convs).
# how a model reads kernels, each set by a fitting rule (FIT_RULES): act_elems's
# in-cache share (3 on), conv taps (4 on), the activation pass (5 on), blocked concats
# (7 on), blocked replicates (8 on), BNs blocked by their input and NCHW-only
# activations (9 on, when the measurements were fused so: latency.raw.raw_fusion); a
# profile file says the ones that are true
RULE_OF_FLAG = {"act_in_cache": 3, "conv_taps": 4, "act_pass": 5, "blocked_concat": 7,
               "blocked_replicate": 8, "blocked_bn_acts": 9}
MODEL_FLAGS = tuple(RULE_OF_FLAG)
# the flags that choose how a graph is fused into kernels (latency.kernels.kernels'
# arguments of the same names): a model predicts kernels fused as it was fitted
FUSION_FLAGS = ("blocked_concat", "blocked_replicate", "blocked_bn_acts")


def rule_flags(rules: int) -> dict:
    """The model flags fitting rules ``rules`` set (:data:`RULE_OF_FLAG`)."""
    return {f: rules >= r for f, r in RULE_OF_FLAG.items()}
N_HINGE_FEATURES = 2
# Cache hinges, in multiples of the per-core L2 cache: a kernel whose working set (input +
# output + weights) outgrows the cache streams from L3 / memory and costs more per element
# (measured on the EPYC here: ~0.1 ns per element in L2, ~0.3 ns at 10x L2). spill_i is the
# working set beyond hinge i, in elements.
# row(act_in_cache=True) reads L2 back as hinges[0] / HINGES_L2[0] from a profile's stored
# hinges (in elements): changing HINGES_L2[0] would move every fit-rules-3 profile's
# predictions, so such a change must store L2 in the model and raise FIT_RULES
HINGES_L2 = (2.0, 8.0)
# The version of archspec's fitting rules, raised whenever a change to the fit (not to the
# measuring) changes a profile fitted from the same measurements; recorded in
# ``fitted_with``, so that a profile fitted by older rules is not taken for this
# archspec's fit. 2: a feature too few kernels have is not fitted (2026-12-03); 3:
# act_elems counts the in-cache share of a kernel's working set (2026-12-04); 4: a
# blocked full / grouped conv's MACs are split by taps, interior and edge (edge_macs), the
# taps in the padding not counted (2026-12-04); 5: a conv's activation applied in a pass
# of its own is priced per output element (pass_elems, 2026-12-04); 6: a kernel type
# too rare to fit falls back to its conv family in its layout first (conv.dw.p,
# 2026-12-04); 7: a concat of blocked tensors whose channels fill whole blocks stays
# blocked, as onnxruntime's NCHWc transformer runs it (the samples' features are those of
# that fusion: latency.fitting.build fuses older rules' samples as they were, 2026-12-04);
# 8: a replicate of a blocked tensor whose channels fill whole blocks stays blocked, as
# any such concat (2026-12-04); 9: an unfolded BN is blocked when its input is (not when
# its channels fill blocks) and fuses only the activations onnxruntime's NCHWc
# transformer fuses into it; relu6, leaky_relu, elu, softplus reorder a blocked input
# (2026-12-04). 9 changes which nodes a kernel covers, so measurements record the fusion
# they were attributed with (latency.raw.raw_fusion) and a profile fitted on older ones
# keeps the older BN fusion.
FIT_RULES = 9
MIN_SAMPLES = 8
LINEAR_FLOOR_US = 0.05    # the trees scale the linear model's time, kept above this
OUTLIER_REL = 0.35


@functools.lru_cache(maxsize=4096)
def family(type_: str) -> str:
    """The correction family of a kernel type: ``conv.dw.k3s1.c`` -> ``conv.dw``."""
    parts = type_.split(".")
    return ".".join(parts[:2]) if parts[0] == "conv" else parts[0]


def row(features: dict, hinges: tuple = (), act_in_cache: bool = False,
        conv_taps: bool = False, act_pass: bool = False) -> list[float]:
    """The feature vector of a kernel; ``hinges``: spill thresholds in elements;
    ``act_in_cache``: ``act_elems`` counts the elements written through a dear activation
    in proportion to the share of the working set that fits in L2 (the rest of the
    activation's work hides under the memory traffic: docs/latency.md, "Activations"),
    as models fitted since fit rules 3 read it; else all of them; ``conv_taps``: a
    blocked full / grouped conv's MACs are split into interior and edge taps
    (``edge_macs``, fit rules 4 on), else ``macs`` is all of them and ``edge_macs`` 0;
    ``act_pass``: ``pass_elems`` counts the output of a conv whose activation runs as a
    pass of its own (fit rules 5 on), else 0."""
    ws = features["in_elems"] + features["out_elems"] + features["params"]
    spill = [max(0.0, ws - h) for h in hinges] + [0.0] * (N_HINGE_FEATURES - len(hinges))
    act = features["out_elems"] if features.get("act", 0) >= 2 else 0.0
    if act and act_in_cache and hinges and ws > 0:
        act *= min(1.0, hinges[0] / HINGES_L2[0] / ws)
    macs, edge = features["macs"], 0.0
    if conv_taps and "taps_int" in features:
        macs, edge = macs * features["taps_int"], macs * features["taps_edge"]
    return [1.0, macs / SCALES[1]] + \
        [features[k] / s for k, s in zip(FEATURES[2:6], SCALES[2:6])] + \
        [x / s for x, s in zip(spill, SCALES[6:8])] + [act / SCALES[8], edge / SCALES[9]] + \
        [features["out_elems"] / SCALES[10] if act_pass and features.get("act_pass") else 0.0]


# the kernel families the fusion rules start (latency.kernels.FAMILIES, a test keeps them
# equal), in the order a profile's trees index them: a new family goes at the end
TREE_FAMILIES = ("conv.pw", "conv.dw", "conv.full", "conv.group", "se", "bn", "replicate",
                 "add", "add_partial", "act", "pool", "linear", "concat", "slice", "mul",
                 "reshape")
TREE_FEATURES = ("family", "kernel", "stride", "blocked", "log_macs", "log_in", "log_out",
                 "log_params", "log_reorder", "log_cin", "log_cout", "log_hw", "cin_16",
                 "cout_16", "cin_8", "log_net", "act")
# a profile's trees read a prefix of TREE_FEATURES: those fitted before "act" existed
# (16 features, the shipped profile) never read it and predict as they always did
# "act": the share of a kernel's work its activation is -- the dearest activation it
# applies (class 0 none, 1 a clip: relu, relu6, leaky_relu, 2 piecewise-linear products:
# hswish, hsigmoid, 3 a transcendental), weighted, times out / (MACs + out): what an
# activation adds to a depthwise conv (few MACs per output) is a large share, to a wide
# 1x1 conv a small one (the class alone let the trees see ~40% less of it)
ACT_WEIGHT = (0.0, 0.25, 1.0, 2.0)
TREES_WITHOUT_ACT = len(TREE_FEATURES) - 1   # what a fit reads unless asked for "act"


def tree_row(type_: str, f: dict) -> list[float]:
    """What the boosted trees read: the kernel's type split into its parts, and its
    sizes on a log scale (shape details the linear model cannot see: channel counts
    that fill the SIMD blocks or not, small maps, tall vs wide)."""
    parts = type_.split(".")
    fam = family(type_)
    k = s = 0
    if len(parts) > 2 and parts[2].startswith("k") and "s" in parts[2]:
        k_, s_ = parts[2][1:].split("s", 1)
        k, s = int(k_), int(s_)
    cin, cout = f.get("cin", 0), f.get("cout", 0)
    lg = math.log1p
    return [float(TREE_FAMILIES.index(fam) if fam in TREE_FAMILIES else len(TREE_FAMILIES)),
            float(k), float(s), 1.0 if type_.endswith(".c") else 0.0,
            lg(f["macs"]), lg(f["in_elems"]), lg(f["out_elems"]), lg(f["params"]),
            lg(f["reorder_elems"]), lg(cin), lg(cout), lg(f.get("hw", 0)),
            float(cin % 16 == 0), float(cout % 16 == 0), float(cin % 8 == 0),
            lg(f.get("net_elems", 0)),
            ACT_WEIGHT[f.get("act", 0)] * f["out_elems"] / (f["macs"] + f["out_elems"] + 1)]


def boost(trees: dict, x: list[float]) -> float:
    """The boosted trees' log-ratio for one kernel (0 when there are none)."""
    if not trees:
        return 0.0
    total = trees["offset"]
    lr = trees["learning_rate"]
    for feat, thr, left, right, value in trees["trees"]:
        i = 0
        while left[i] >= 0:
            i = left[i] if x[feat[i]] <= thr[i] else right[i]
        total += lr * value[i]
    return total


def _check_trees(trees: dict) -> None:
    """A profile's trees are well formed and read this archspec's tree features."""
    feats = list(trees.get("features", []))
    if not feats or feats != list(TREE_FEATURES[:len(feats)]):
        raise ValueError("the profile's trees read other features; recalibrate with this "
                         "archspec")
    try:
        float(trees["offset"]) + float(trees["learning_rate"])
        for feat, thr, left, right, value in trees["trees"]:
            n = len(feat)
            if not (n == len(thr) == len(left) == len(right) == len(value)) or n == 0:
                raise ValueError("tree arrays of different lengths")
            for i in range(n):
                if left[i] >= 0 and not (0 <= feat[i] < len(feats)
                                         and 0 < left[i] < n and 0 < right[i] < n):
                    raise ValueError(f"node {i} points outside the tree")
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the profile's trees are malformed ({e})") from None


def ancestors(type_: str, layout: bool = False) -> list[str]:
    """``conv.dw.k3s1.c`` -> the type itself, then its prefixes, then ``*``; ``layout``:
    a conv type with a kernel size and a layout also has its family in that layout next
    (``conv.dw.k9s2.p`` -> ``conv.dw.p`` -> ``conv.dw.k9s2`` -> ``conv.dw`` ...: fit rules
    6 on; a model fitted before has no such type and predicts as it did)."""
    parts = type_.split(".")
    out = [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + ["*"]
    if layout and len(parts) == 4 and parts[0] == "conv" and parts[3] in ("c", "p"):
        out.insert(1, f"{parts[0]}.{parts[1]}.{parts[3]}")
    return out


@dataclass
class KernelPrediction:
    name: str
    type: str
    model: str          # the fitted type that predicted it
    us: float
    nodes: list
    block: str = ""
    stage: str = ""


@dataclass
class Prediction:
    total_ms: float
    overhead_ms: float
    kernels: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"total_ms": round(self.total_ms, 4), "overhead_ms": round(self.overhead_ms, 4),
                "kernels": [{"name": k.name, "type": k.type, "model": k.model,
                             "ms": round(k.us / 1000.0, 5), "nodes": k.nodes,
                             "block": k.block, "stage": k.stage} for k in self.kernels]}

    def per(self, key: str) -> dict[str, float]:
        """ms per ``layer`` (the kernel's first IR node), ``block`` or ``stage``."""
        out: dict[str, float] = {}
        for k in self.kernels:
            name = {"layer": k.name, "block": k.block, "stage": k.stage}[key]
            out[name] = out.get(name, 0.0) + k.us / 1000.0
        return out


class LatencyModel:
    """Coefficients per kernel type (``coef[type]`` aligned with FEATURES) + overhead."""

    def __init__(self, coef: dict[str, list[float]], overhead: tuple[float, float],
                 stats: dict | None = None, correction: dict | None = None,
                 hinges: tuple = (), trees: dict | None = None, act_in_cache: bool = False,
                 conv_taps: bool = False, act_pass: bool = False,
                 blocked_concat: bool = False, blocked_replicate: bool = False,
                 blocked_bn_acts: bool = False):
        # coefficients fitted before a feature existed are 0 for it (an older profile);
        # the model is saved with the features it was fitted with (a refit by older
        # rules writes the file those rules wrote, bit for bit)
        self.n_features = max((len(c) for c in coef.values()), default=len(FEATURES))
        self.coef = {t: list(c) + [0.0] * (len(FEATURES) - len(c)) for t, c in coef.items()}
        self.hinges = tuple(hinges)
        self.act_in_cache = act_in_cache   # how row() counts act_elems (fit rules 3 on)
        self.conv_taps = conv_taps         # row() splits conv MACs by taps (fit rules 4 on)
        self.act_pass = act_pass           # row() counts pass_elems (fit rules 5 on)
        # its kernels are fused with block-aligned concats kept blocked (fit rules 7 on;
        # latency.kernels.kernels' blocked_concat), and replicates (8 on), BNs by their
        # input's layout (9 on, measurements fused so)
        self.blocked_concat = blocked_concat
        self.blocked_replicate = blocked_replicate
        self.blocked_bn_acts = blocked_bn_acts
        self.trees = trees or {}
        self.overhead = overhead
        self.stats = stats or {}
        self.correction = correction or {}   # family -> [scale, shift us]
        # the images a run of the profile processes (its settings' batch, set by Profile):
        # predict reads each kernel's features for that many (Kernel.features)
        self.batch = 1

    def model_for(self, type_: str) -> str:
        for t in ancestors(type_, layout=True):
            if t in self.coef:
                return t
        raise KeyError(f"the profile has no model for kernel type {type_!r}")

    def linear_us(self, type_: str, features: dict) -> tuple[str, float]:
        """The linear per-type model alone."""
        t = self.model_for(type_)
        return t, sum(c * x for c, x in zip(self.coef[t], row(features, self.hinges,
                                                              self.act_in_cache,
                                                              self.conv_taps,
                                                              self.act_pass)))

    def raw_us(self, type_: str, features: dict | None, *, linear: tuple | None = None,
               trees_sum: float | None = None) -> tuple[str, float]:
        """The first-stage (per-kernel, profiled) prediction: the linear model times
        exp(boosted trees' log-ratio). ``linear`` (what :meth:`linear_us` gives) and
        ``trees_sum`` (what :func:`boost` gives), where known already, are not computed
        again (a sweep computes them for many kernels at once: archspec.latency.memo);
        ``features`` is read only for what is not given."""
        t, us = self.linear_us(type_, features) if linear is None else linear
        if self.trees:
            if trees_sum is None:
                trees_sum = boost(self.trees, tree_row(type_, features))
            us = self.boosted_us(us, trees_sum)
        return t, us

    @staticmethod
    def boosted_us(linear_us: float, trees_sum: float) -> float:
        """The linear model's time scaled by the trees' log-ratio."""
        return max(linear_us, LINEAR_FLOOR_US) * math.exp(trees_sum)

    def kernel_us(self, type_: str, features: dict | None, *, linear: tuple | None = None,
                  trees_sum: float | None = None) -> tuple[str, float]:
        """The kernel's predicted time: :meth:`raw_us` (same arguments) corrected."""
        t, us = self.raw_us(type_, features, linear=linear, trees_sum=trees_sum)
        return t, self.corrected_us(self.correction_of(type_), us)

    def correction_of(self, type_: str) -> tuple[float, float]:
        """(scale, shift) of the kernel type's family (:meth:`corrected_us`)."""
        return self.correction.get(family(type_), (1.0, 0.0))

    @staticmethod
    def corrected_us(correction: tuple[float, float], us: float) -> float:
        """A first-stage time corrected by its family's (scale, shift), kept above a
        tenth of itself."""
        scale, shift = correction
        return max(scale * us + shift, 0.1 * us)

    def predict(self, kernels, graph=None) -> Prediction:
        """Per kernel and in total; ``graph`` (the kernels' IR graph) gives the trees
        the activation each kernel applies (accepted for older callers: a kernel carries
        it since it was fused, ``Kernel.act``). The kernels are those of one image
        (latency.kernels); their features are read for :attr:`batch` images."""
        preds = []
        batch = self.batch
        for k in kernels:
            t, us = self.kernel_us(k.type, k.features(batch))
            preds.append(KernelPrediction(k.name, k.type, t, us, list(k.nodes), k.block,
                                          k.stage))
        total_ms, overhead_ms = self.total_ms([p.us for p in preds])
        return Prediction(total_ms, overhead_ms, preds)

    def total_ms(self, kernel_us: list[float]) -> tuple[float, float]:
        """(total ms, per-model overhead ms) of a network whose kernels take these us."""
        a, b = self.overhead
        overhead_ms = (a + b * len(kernel_us)) / 1000.0
        return sum(kernel_us) / 1000.0 + overhead_ms, overhead_ms

    def to_dict(self) -> dict:
        n = self.n_features
        return {"features": list(FEATURES[:n]), "feature_scale": list(SCALES[:n]),
                "coef": {t: c[:n] for t, c in self.coef.items()},
                "overhead_us": list(self.overhead),
                "correction": self.correction, "hinges_elems": list(self.hinges),
                "trees": self.trees, "fit": self.stats,
                **{f: True for f, on in self.flags().items() if on}}

    @classmethod
    def from_dict(cls, d: dict) -> LatencyModel:
        feats = list(d.get("features", []))
        if len(feats) < 8 or feats != list(FEATURES[:len(feats)]):
            raise ValueError("the profile's model uses other features "
                             f"({d.get('features')}); recalibrate with this archspec")
        trees = d.get("trees") or {}
        if trees:
            _check_trees(trees)
        flags = {f: d.get(f, False) for f in MODEL_FLAGS}
        bad = [f for f, v in flags.items() if type(v) is not bool]
        if bad:
            raise ValueError(f"{', '.join(bad)}: true or false expected")
        coef = {k: list(v) for k, v in d["coef"].items()}
        if any(len(c) != len(feats) for c in coef.values()):
            raise ValueError(f"coefficients for {len(feats)} features expected per type")
        for flag, feature in (("conv_taps", "edge_macs"), ("act_pass", "pass_elems")):
            i = FEATURES.index(feature)
            if flags[flag] and feature not in feats:
                raise ValueError(f"{flag} without the feature {feature}")
            if not flags[flag] and feature in feats and any(c[i] for c in coef.values()):
                raise ValueError(f"coefficients for {feature} without {flag}")
        return cls(coef, tuple(d["overhead_us"]),
                   d.get("fit", {}), {k: list(v) for k, v in d.get("correction", {}).items()},
                   tuple(d.get("hinges_elems", ())), trees, **flags)

    def flags(self) -> dict:
        """The fitting rules' choices this model predicts by (:data:`MODEL_FLAGS`)."""
        return {f: getattr(self, f) for f in MODEL_FLAGS}

    def fusion(self) -> dict:
        """How its kernels are fused (:data:`FUSION_FLAGS`, the keyword arguments of
        :func:`~archspec.latency.kernels.kernels`): as the model was fitted."""
        return {f: getattr(self, f) for f in FUSION_FLAGS}


# ---- fitting (numpy) -----------------------------------------------------------------------
def _nnls_rel(X, y, w=None):
    """Non-negative least squares on relative error (rows scaled by 1/y), or with row
    weights ``w`` (rows scaled by w), by active set: drop the most negative coefficient
    and refit until none is negative."""
    import numpy as np

    if w is None:
        w = 1.0 / y
    A = X * w[:, None]
    b = y * w
    active = list(range(X.shape[1]))
    while True:
        sol, *_ = np.linalg.lstsq(A[:, active], b, rcond=None)
        if (sol >= 0).all() or len(active) == 1:
            coef = np.zeros(X.shape[1])
            coef[active] = np.clip(sol, 0, None)
            return coef
        active.pop(int(np.argmin(sol)))


USES = {  # the features each family's time depends on (others are fixed at 0)
    "linear": ("one", "macs", "reorder_elems", "spill_1", "spill_2"),   # weights spill too
    "pool": ("one", "in_elems", "reorder_elems", "spill_1", "spill_2"),
    "se": ("one", "macs", "in_elems", "reorder_elems", "spill_1", "spill_2"),
}


# the kernel types that price act_elems: depthwise convs. Measured on the Zen 3 host
# (2026-12-02, onnxruntime 1.32.0, 1 thread): a chain of 12 fused depthwise 3x3 convs
# (144 x 56 x 56) ran 1.12x slower with hswish than with relu6, a chain of full 3x3 convs
# 1.005x -- an activation applied to a compute-bound conv's output blocks is hidden under
# its MACs. Priced in every conv, the fit (calibration networks draw one activation per
# block) charged pointwise convs as much as depthwise ones and predicted MobileNetV2 with
# hswish 1.085x relu6, measured 1.017x; depthwise only: 1.031x (docs/latency.md, Pairs).
ACT_TYPES = ("conv.dw",)


def mask(type_: str) -> list[bool]:
    uses = USES.get(type_.split(".")[0])
    if type_.split(".")[0] not in ("conv", "*") and uses is None:
        uses = ("one", "in_elems", "out_elems", "reorder_elems", "spill_1", "spill_2")
    act = type_.startswith(ACT_TYPES)
    return [(uses is None or f in uses) and (f != "act_elems" or act) for f in FEATURES]


def fit_type(rows_: list[list[float]], ys: list[float], type_: str = "*",
             weights: list[float] | None = None, sparse_rule: bool = True
             ) -> tuple[list[float], dict]:
    """Coefficients for one kernel type, with outlier rejection; and fit statistics.
    ``weights``: per-sample row weights (default 1/y: relative error); ``sparse_rule``:
    a feature too few rows have is not fitted (fit rules 2 on)."""
    import numpy as np

    X, y = np.asarray(rows_, float), np.asarray(ys, float)
    X = X * np.asarray(mask(type_))[:X.shape[1]]
    keep = y > 0
    X, y = X[keep], y[keep]
    if not len(y):   # a type onnxruntime never times (reshape: no kernel of its own)
        return [0.0] * X.shape[1], {"n": 0, "outliers": 0, "median_abs_rel_err": None,
                                    "within_10pct": None}
    # a feature fewer than MIN_SAMPLES of the type's kernels have (a cache spill that two
    # calibration kernels reach) is not fitted: a slope set by one or two points
    # extrapolates without bound (docs/latency.md, "Sparse features")
    if sparse_rule:
        sparse = (X != 0).sum(axis=0) < MIN_SAMPLES
        sparse[0] = False
        X[:, sparse] = 0.0
    w = None if weights is None else np.asarray(weights, float)[keep]
    coef = _nnls_rel(X, y, w)
    rel = X @ coef / y - 1
    inliers = np.abs(rel) <= max(OUTLIER_REL, 3 * float(np.median(np.abs(rel))))
    if inliers.sum() >= max(MIN_SAMPLES, X.shape[1]) and not inliers.all():
        coef = _nnls_rel(X[inliers], y[inliers], None if w is None else w[inliers])
        rel = X @ coef / y - 1
    stats = {"n": int(len(y)), "outliers": int((~inliers).sum()),
             "median_abs_rel_err": round(float(np.median(np.abs(rel[inliers]))), 4),
             "within_10pct": round(float(np.mean(np.abs(rel) <= 0.10)), 3)}
    return [float(c) for c in coef], stats


def fit_correction(model: LatencyModel, samples: list[dict], walls: list[float],
                   ridge: float = 0.05, shift_weight: float = 0.1
                   ) -> tuple[dict, float, dict]:
    """Second stage: per family ``scale`` and ``shift`` and a constant, so that the sum of
    corrected kernel predictions matches each calibration network's unprofiled wall time
    (relative least squares, ridge towards scale 1 / shift 0). Returns (correction,
    constant us, stats)."""
    import numpy as np

    fams = sorted({family(s["type"]) for s in samples})
    n_nets = len(walls)
    S = np.zeros((n_nets, len(fams)))   # first-stage us per family
    N = np.zeros((n_nets, len(fams)))   # kernels per family
    for s in samples:
        f = fams.index(family(s["type"]))
        S[s["net"], f] += model.raw_us(s["type"], s["features"])[1]
        N[s["net"], f] += 1
    w = np.asarray(walls, float)
    X = np.hstack([S, N, np.ones((n_nets, 1))]) / w[:, None]
    y = np.ones(n_nets)
    k = len(fams)
    # ridge rows: sqrt(lambda) * (theta - prior); shifts measured in units of 10 us
    prior = np.concatenate([np.ones(k), np.zeros(k), [0.0]])
    scale = np.concatenate([np.ones(k), np.full(k, shift_weight), [0.001]])
    R = np.diag(scale) * np.sqrt(ridge)
    theta, *_ = np.linalg.lstsq(np.vstack([X, R]), np.concatenate([y, R @ prior]), rcond=None)
    before = np.abs(S.sum(1) / w - 1)
    after = np.abs(X @ theta - 1)
    stats = {"networks": n_nets, "within_10pct_before": round(float(np.mean(before <= .1)), 3),
             "within_10pct_after": round(float(np.mean(after <= .1)), 3),
             "median_abs_rel_err_after": round(float(np.median(after)), 4)}
    correction = {f: [round(float(theta[i]), 5), round(float(theta[k + i]), 4)]
                  for i, f in enumerate(fams)}
    return correction, float(theta[-1]), stats


def fit_trees(model: LatencyModel, samples: list[dict], n_trees: int = 200,
              depth: int = 4, learning_rate: float = 0.1, seed: int = 0,
              n_features: int = TREES_WITHOUT_ACT) -> tuple[dict, dict]:
    """Gradient-boosted regression trees (scikit-learn, Huber loss) on log(measured /
    linear prediction) per kernel, from :func:`tree_row`; each kernel weighted by the
    square root of its share of its network's time (the kernels that make a network
    slow count most, small ones still count); the first ``n_features`` of
    TREE_FEATURES. Returned as plain lists for :func:`boost`, so prediction needs no
    scikit-learn."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    totals: dict[int, float] = {}
    for s in samples:
        totals[s["net"]] = totals.get(s["net"], 0.0) + s["us"]
    keep = [s for s in samples if s["us"] > 0]
    # scikit-learn's trees compare float32 copies of the features; the plain-Python trees
    # compare what they are given: the features are fitted as float32 values, so both
    # read the same numbers (a float64 value between a float32 one and a threshold would
    # otherwise go the other way: the export check below caught it with `act`)
    X = np.array([tree_row(s["type"], s["features"])[:n_features] for s in keep],
                 dtype=np.float32).astype(np.float64)
    lin = np.array([max(model.linear_us(s["type"], s["features"])[1], LINEAR_FLOOR_US)
                    for s in keep])
    y = np.array([s["us"] for s in keep])
    w = np.sqrt(y / np.array([totals[s["net"]] for s in keep]))
    g = GradientBoostingRegressor(n_estimators=n_trees, max_depth=depth,
                                  learning_rate=learning_rate, subsample=0.8, loss="huber",
                                  random_state=seed)
    target = np.log(y / lin)
    g.fit(X, target, sample_weight=w)
    trees = []
    for (est,) in g.estimators_:
        t = est.tree_
        trees.append([t.feature.tolist(), [float(v) for v in t.threshold],
                      t.children_left.tolist(), t.children_right.tolist(),
                      [round(float(v), 6) for v in t.value[:, 0, 0]]])
    out = {"features": list(TREE_FEATURES[:n_features]), "learning_rate": learning_rate,
           "offset": 0.0,
           "trees": trees}
    # the constant scikit-learn starts from (its init estimator), recovered exactly
    gp = g.predict(X)
    out["offset"] = float(np.median(gp[:64] - [boost(out, list(x)) for x in X[:64]]))
    mine = np.array([boost(out, list(x)) for x in X[:500]])
    pred = np.log(lin) + gp
    before = np.abs(lin / y - 1)
    after = np.abs(np.exp(pred) / y - 1)
    stats = {"n": int(len(y)), "trees": n_trees, "depth": depth, "seed": seed,
             "within_10pct_linear": round(float(np.mean(before <= .1)), 3),
             "within_10pct_boosted": round(float(np.mean(after <= .1)), 3),
             "export_max_abs_diff": float(np.max(np.abs(mine - gp[:500])))}
    if stats["export_max_abs_diff"] > 1e-4:   # the plain-Python trees must be sklearn's
        raise RuntimeError("exported trees disagree with scikit-learn's prediction "
                           f"({stats['export_max_abs_diff']:.2g})")
    return out, stats


def fit(samples: list[dict], overhead_samples: list[tuple[int, float]],
        walls: list[float] | None = None, hinges: tuple = (),
        n_trees: int = 0, tree_seed: int = 0, tree_act: bool = False,
        rules: int = FIT_RULES, fusion: dict | None = None) -> LatencyModel:
    """``samples``: {type, features, us, net}; ``overhead_samples``: (kernels, us) per
    network; ``walls``: each calibration network's unprofiled median wall time (us),
    which enables the second-stage correction; ``tree_seed``: the boosted trees' random
    state (their row subsampling); ``tree_act``: the trees also read the activation
    class (``act``); ``rules``: the fitting rules' version
    (:data:`FIT_RULES`: 2 the sparse-feature rule, 3 the
    in-cache share of ``act_elems``, 4 conv MACs split by taps (``edge_macs``), 5 the
    activation pass (``pass_elems``), 6 a conv family per layout between a kernel type and
    its kernel size (``conv.dw.p``: :func:`ancestors`), 7 the samples' kernels fused with
    block-aligned concats kept blocked (the samples' features must be so: the model
    says ``blocked_concat`` and predicts kernels fused that way), 8 block-aligned
    replicates too (``blocked_replicate``), 9 BNs blocked by their input
    (``blocked_bn_acts``); an older version refits a profile fitted by it). ``fusion``:
    fusion flags the samples' kernels were *not* fused with although the rules have them
    (false: measurements older than the rule, :func:`~archspec.latency.raw.raw_fusion`)."""
    flags = rule_flags(rules)
    for f, on in (fusion or {}).items():
        if f not in FUSION_FLAGS:
            raise ValueError(f"{f!r} is not a fusion flag ({', '.join(FUSION_FLAGS)})")
        flags[f] = flags[f] and on
    in_cache, taps, act_pass = flags["act_in_cache"], flags["conv_taps"], flags["act_pass"]
    # older rules fit the features they had (not a column of zeros: the solver's bits
    # would move), their models read the later features' coefficients as 0
    width = len(FEATURES) if act_pass else FEATURES.index("pass_elems") if taps else \
        FEATURES.index("edge_macs")
    import numpy as np

    groups: dict[str, list[dict]] = {}
    for s in samples:
        for t in ancestors(s["type"], layout=rules >= 6):
            groups.setdefault(t, []).append(s)
    coef, stats = {}, {}
    for t, group in sorted(groups.items()):
        if len(group) < MIN_SAMPLES and t != "*":
            continue
        coef[t], stats[t] = fit_type([row(s["features"], hinges, in_cache, taps,
                                          act_pass)[:width]
                                      for s in group],
                                     [s["us"] for s in group], t, sparse_rule=rules >= 2)
    if overhead_samples:  # robust on a busy machine: the median overhead per kernel
        per = sorted(us / max(n, 1) for n, us in overhead_samples)
        overhead = (0.0, float(np.median(per)))   # may be negative: a correction
    else:
        overhead = (0.0, 0.0)
    if "*" not in coef:
        raise ValueError("no kernel samples to fit")
    model = LatencyModel(coef, overhead, stats, hinges=hinges, **flags)
    if n_trees:
        n_features = len(TREE_FEATURES) if tree_act else TREES_WITHOUT_ACT
        model.trees, stats["trees"] = fit_trees(model, samples, n_trees, seed=tree_seed,
                                                n_features=n_features)
    if walls:
        model.correction, constant, stats["network_correction"] = \
            fit_correction(model, samples, walls)
        model.overhead = (constant, 0.0)
    return model
