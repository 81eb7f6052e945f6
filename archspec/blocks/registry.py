"""The block registry: block names -> their declared fields and their lowering to IR ops.

Blocks are found without hand imports: every module of this package is imported the first
time a block is asked for, and third-party packages add blocks through the
``archspec.blocks`` entry-point group (each entry point names a module that registers its
blocks on import). Entry points are scanned only when a name is not among the built-ins,
so a spec of built-in blocks never pays for reading package metadata.

Registering a block name or alias twice is an error, and so is declaring a field under a
name another block declares with another type or range; an unknown name gets a
"did you mean" hint.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ..errors import ArchspecError, did_you_mean
from .fields import N, REQUIRED, Field

GROUP = "archspec.blocks"


class RegistryError(ArchspecError):
    """A block or field registered twice, or a block plugin that cannot be imported."""


@dataclass(frozen=True)
class BlockDef:
    name: str
    lower: Callable
    declared: dict[str, Field]  # field name -> its declaration (n first)
    aliases: tuple[str, ...] = ()
    check: Callable | None = None  # row fields -> list of (field, message, hint)
    summary: str = ""
    one_of: tuple[tuple[str, ...], ...] = field(default=())  # exactly one of each group
    module: str = ""

    @property
    def fields(self) -> dict:
        """Field name -> default (or REQUIRED)."""
        return {k: f.default for k, f in self.declared.items()}

    @property
    def scaled(self) -> tuple[str, ...]:
        """The channel fields the width multiplier scales."""
        return tuple(k for k, f in self.declared.items() if f.scaled)

    @property
    def doc(self) -> str:
        """The lowering's docstring: what the block builds, citing the paper."""
        return inspect.cleandoc(self.lower.__doc__ or "")


class UnknownBlock(KeyError):
    def __init__(self, name: str, hint: str):
        super().__init__(name)
        self.name, self.hint = name, hint


class Registry:
    def __init__(self, package: str = __package__, group: str = GROUP):
        self._package, self._group = package, group
        self._defs: dict[str, BlockDef] = {}
        self._names: dict[str, str] = {}  # name or alias -> canonical name
        self._fields: dict[str, Field] = {}  # field name -> what its declarations share
        self._builtins = self._plugins = False
        self.generation = 0  # grows with each registration (caches key on it)

    def register(self, name: str, *, fields: Iterable[Field], aliases=(), check=None,
                 one_of=()):
        """Decorator registering ``lower(builder, x, fields) -> output node``; its
        docstring is the block's reference text (first line: the summary)."""

        def deco(lower):
            declared = self._declare(name, fields)
            for key in (name, *aliases):
                if key in self._names:
                    raise RegistryError(f"block name `{key}` is already registered "
                                        f"(by {self._defs[self._names[key]].module})")
            doc = " ".join(inspect.cleandoc(lower.__doc__ or "").split("\n\n")[0].split())
            self._defs[name] = BlockDef(name, lower, declared, tuple(aliases),
                                        _with_choices(declared, check), doc,
                                        tuple(one_of), lower.__module__)
            for key in (name, *aliases):
                self._names[key] = name
            for f in declared.values():
                self._fields[f.name] = _common(self._fields.get(f.name), f)
            self.generation += 1
            return lower

        return deco

    def _declare(self, block: str, fields: Iterable[Field]) -> dict[str, Field]:
        declared = {"n": N}
        for f in fields:
            if f.name in declared:
                raise RegistryError(f"block `{block}` declares field `{f.name}` twice")
            known = self._fields.get(f.name)
            if known is not None and known.schema() != f.schema():
                raise RegistryError(f"block `{block}` declares field `{f.name}` as "
                                    f"{f.type_text()}, but it is {known.type_text()} elsewhere")
            if f.mismatch(f.default):
                raise RegistryError(f"block `{block}`, field `{f.name}`: "
                                    f"{f.mismatch(f.default)}")
            declared[f.name] = f
        return declared

    # ---- lookup (loads the built-ins first, plugins only for a name they lack) --------
    def get(self, name: str) -> BlockDef:
        canonical = self._canonical(name)
        if canonical is None:
            raise UnknownBlock(name, did_you_mean(name, self.names()))
        return self._defs[canonical]

    def _canonical(self, name) -> str | None:
        key = str(name).lower()
        self.load_builtins()
        if key not in self._names:
            self.load_plugins()
        return self._names.get(key)

    def names(self) -> list[str]:
        """Every block name and alias, sorted (plugins included)."""
        self.load_all()
        return sorted(self._names)

    def __contains__(self, name) -> bool:
        return self._canonical(name) is not None

    def __iter__(self):
        """The built-in blocks (see :meth:`builtins`), then the plugins'."""
        self.load_all()
        builtins = self.builtins()
        return iter(builtins + [b for b in self._defs.values() if b not in builtins])

    def builtins(self) -> list[BlockDef]:
        """The blocks of this package, by module name, each module's in its order."""
        self.load_builtins()
        ours = [b for b in self._defs.values() if b.module.startswith(self._package + ".")]
        return sorted(ours, key=lambda b: b.module)

    def declarations(self, blocks: Iterable[BlockDef] | None = None) -> dict[str, Field]:
        """Field name -> what its declarations share, sorted by name, over ``blocks``
        (default: every block registered so far; plugins are not looked for)."""
        self.load_builtins()
        if blocks is None:
            return dict(sorted(self._fields.items()))
        names = {f for block in blocks for f in block.declared}
        return {name: self._fields[name] for name in sorted(names)}

    def require(self, blocks: Iterable = (), fields: Iterable = ()) -> None:
        """Make sure every block and field name a document uses is registered if any
        module can register it: the plugins are loaded when one is not a built-in."""
        self.load_builtins()
        if any(str(b).lower() not in self._names for b in blocks) or \
                any(f not in self._fields for f in fields):
            self.load_plugins()

    # ---- discovery ----------------------------------------------------------------------
    @property
    def plugins_loaded(self) -> bool:
        """Whether the entry points have been scanned (only when a name needed them)."""
        return self._plugins

    def load_all(self) -> None:
        self.load_builtins()
        self.load_plugins()

    def load_builtins(self) -> None:
        """Import every module of this package (each registers its blocks)."""
        if self._builtins:
            return
        self._builtins = True
        package = importlib.import_module(self._package)
        for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
            if not module.startswith("_"):
                importlib.import_module(f"{self._package}.{module}")

    def load_plugins(self) -> None:
        """Import the modules the ``archspec.blocks`` entry points name."""
        if self._plugins:
            return
        self._plugins = True
        for ep in _entry_points(self._group):
            try:
                ep.load()
            except ImportError as e:
                raise RegistryError(f"block plugin `{ep.name}` ({ep.value}) cannot be "
                                    f"imported: {e}") from None


def _common(known: Field | None, new: Field) -> Field:
    """What all declarations of a field share: the type and range, and the doc if every
    block gives the same one."""
    if known is None or (known.shared_doc or known.doc) == (new.shared_doc or new.doc):
        return known or new
    return replace(known, doc="depends on the block", shared_doc="", choices=())


def _with_choices(declared: dict[str, Field], check):
    """The block's check, preceded by a check of each field that has ``choices``."""
    choices = [f for f in declared.values() if f.choices]
    if not choices:
        return check

    def checked(f):
        problems = [(c.name, f"`{c.name}` must be one of {', '.join(map(str, c.choices))}, "
                             f"not `{f.get(c.name)}`", "")
                    for c in choices if f.get(c.name) not in c.choices
                    and not (f.get(c.name) is None and c.default is None)]
        return problems + (list(check(f)) if check else [])

    return checked


def _entry_points(group: str) -> list:
    from importlib import metadata

    try:
        return list(metadata.entry_points(group=group))
    except Exception:  # broken or missing package metadata: no plugins
        return []


BLOCKS = Registry()

__all__ = ["BLOCKS", "REQUIRED", "BlockDef", "Field", "Registry", "RegistryError",
           "UnknownBlock"]
