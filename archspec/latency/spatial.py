"""Kernel figures as polynomials in a block's spatial sizes (sweeps: latency/memo.py).

A block's kernels -- which IR nodes each covers, its type and its layout -- are decided by
the fusion rules (latency/kernels.py) from the ops, their channels and the graph's edges;
its figures (MACs, elements read and written, output pixels...) are sums of products of
shape entries. A sweep meets the same block with the same channels at many input sizes
(its resolutions), so the memo fuses the block once with every height and width replaced
by a symbol (:class:`Poly`) and keeps the kernels' figures as polynomials in those symbols
(:class:`Figures`); at another input size it evaluates them (:meth:`Figures.at`) instead
of fusing again.

That is sound because a :class:`Poly` refuses every use whose answer could depend on the
sizes: ordering, truth, hashing, conversion to a number, and comparisons other than
"the same polynomial" (equal at every size: ``True``). A fusion that tries one raises
:class:`Unknown` and the memo fuses that block concretely, as before. Symbols are given
per distinct size at the first fusion (every height of 56 is one symbol): two nodes the
fusion found equal then share a symbol, and another input size may be used only where
the nodes of each symbol are still of one size (:func:`bind`) -- so every comparison the
fusion made has the same answer there, and it takes the same decisions.
"""
from __future__ import annotations

import math


class Unknown(Exception):
    """A fusion read a spatial size in a way a polynomial cannot answer for every size."""


def _refuse(self, *args):
    raise Unknown("a spatial size was compared, tested or converted")


class Poly:
    """An integer polynomial in size symbols: ``terms`` maps a monomial (a sorted tuple of
    symbols, () for the constant) to its non-zero coefficient. Arithmetic with ints and
    other polynomials; a result without symbols is a plain int."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict):
        self.terms = terms

    @staticmethod
    def symbol(name) -> Poly:
        return Poly({(name,): 1})

    @staticmethod
    def _of(x) -> Poly:
        if type(x) is Poly:
            return x
        if type(x) is int:
            return Poly({(): x} if x else {})
        raise Unknown(f"a spatial size combined with {type(x).__name__}")

    def _simple(self):
        terms = self.terms
        if not terms:
            return 0
        if len(terms) == 1 and () in terms:
            return terms[()]
        return self

    def __add__(self, other):
        terms = dict(self.terms)
        for m, c in Poly._of(other).terms.items():
            c += terms.get(m, 0)
            if c:
                terms[m] = c
            else:
                terms.pop(m, None)
        return Poly(terms)._simple()

    __radd__ = __add__

    def __neg__(self):
        return Poly({m: -c for m, c in self.terms.items()})

    def __sub__(self, other):
        return self + -Poly._of(other)

    def __rsub__(self, other):
        return -self + other

    def __mul__(self, other):
        if type(other) is int:
            return Poly({m: c * other for m, c in self.terms.items()} if other else {})._simple()
        other = Poly._of(other).terms
        if len(self.terms) == 1 and len(other) == 1:   # a product of sizes: most uses
            (m1, c1), = self.terms.items()
            (m2, c2), = other.items()
            return Poly({tuple(sorted(m1 + m2)): c1 * c2})
        terms: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.items():
                m = tuple(sorted(m1 + m2))
                c = terms.get(m, 0) + c1 * c2
                if c:
                    terms[m] = c
                else:
                    terms.pop(m, None)
        return Poly(terms)._simple()

    __rmul__ = __mul__

    def __floordiv__(self, other):
        """Exact division only: by an int dividing every coefficient, or by one monomial
        (times an int) that divides every term; anything else is :class:`Unknown`."""
        divisor = Poly._of(other).terms
        if len(divisor) != 1:
            raise Unknown("division by a sum")
        (dm, dc), = divisor.items()
        terms = {}
        for m, c in self.terms.items():
            rest = list(m)
            for s in dm:
                if s not in rest:
                    raise Unknown("inexact division of spatial sizes")
                rest.remove(s)
            if c % dc:
                raise Unknown("inexact division of spatial sizes")
            terms[tuple(rest)] = c // dc
        return Poly(terms)._simple()

    def __eq__(self, other):
        if type(other) in (Poly, int) and Poly._of(other).terms == self.terms:
            return True
        raise Unknown("two spatial sizes compared that are not the same polynomial")

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = __bool__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __index__ = __int__ = __float__ = __truediv__ = __rtruediv__ = __mod__ = _refuse
    __rfloordiv__ = __rmod__ = __pow__ = __rpow__ = __round__ = __abs__ = _refuse

    def __repr__(self) -> str:
        return " + ".join(f"{c}*{'*'.join(map(str, m)) or '1'}" for m, c in self.terms.items())


def symbolic_shapes(graph) -> tuple[dict, tuple]:
    """Each node's shape with its height and width replaced by symbols, one per distinct
    size per axis (``("h", 56)``), and the binding list :func:`bind` reads:
    (node name, height symbol, width symbol) for every node of rank 3."""
    shapes, binding, symbols = {}, [], {}
    for node in graph:
        shape = node.shape
        if len(shape) != 3:
            shapes[node.name] = shape
            continue
        c, h, w = shape
        for key in (("h", h), ("w", w)):
            if key not in symbols:
                symbols[key] = Poly.symbol(key)
        hs, ws = symbols["h", h], symbols["w", w]
        shapes[node.name] = (c, hs, ws)
        binding.append((node.name, ("h", h), ("w", w)))
    return shapes, tuple(binding)


def bind(binding: tuple, shapes: dict, values: dict | None = None) -> dict | None:
    """The value of each symbol at the sizes ``shapes`` (node name -> concrete shape)
    (added to ``values``, bound before), or None where the nodes of one symbol now differ
    in size (or a node is missing or of another rank)."""
    if values is None:
        values = {}
    get = values.get
    for name, hs, ws in binding:
        shape = shapes.get(name)
        if shape is None or len(shape) != 3:
            return None
        _, h, w = shape
        if get(hs, h) != h or get(ws, w) != w:
            return None
        values[hs] = h
        values[ws] = w
    return values


class Figures:
    """Many figures (ints or :class:`Poly`) compiled to be evaluated together: each
    monomial's value computed once, each figure an int or its (monomial index,
    coefficient) terms."""

    __slots__ = ("monomials", "figures")

    def __init__(self, values):
        index: dict = {}
        figures = []
        for v in values:
            if type(v) is int:
                figures.append(v)
            elif type(v) is Poly:
                figures.append(tuple((index.setdefault(m, len(index)), c)
                                     for m, c in v.terms.items()))
            else:
                raise Unknown(f"a figure of type {type(v).__name__}")
        self.monomials, self.figures = tuple(index), tuple(figures)

    def at(self, values: dict) -> list[int]:
        """Every figure at the symbols' ``values`` (:func:`bind`)."""
        prod = math.prod
        mono = [prod([values[s] for s in m]) for m in self.monomials]
        return [f if f.__class__ is int else sum([c * mono[j] for j, c in f])
                for f in self.figures]
