"""``@record``: the project's frozen, slotted value classes — what ``@dataclass(frozen=True, slots=True)`` makes,
made with one compiled function per class instead of six.

Why: on Python 3.11 ``dataclass`` compiles six small functions from source for each frozen class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``): a command importing ~40 such classes
spent a quarter of its CPU in the parser at start-up.  A record is a dataclass (:func:`dataclasses.fields`,
:func:`dataclasses.replace`, :func:`dataclasses.asdict`, ``__match_args__`` and ``__slots__`` as usual) whose
``__init__`` is compiled here (one ``exec``: the same parameters, defaults and default factories, each field set
with ``object.__setattr__`` as a frozen dataclass's is) and whose other methods are shared functions that behave as
the generated ones:

- equal when the other object is of the very same class and the compared fields (``field(compare=False)`` left
  out) are equal, else ``NotImplemented``; the hash is that of the hashed fields (``field(hash=…)`` honoured);
- ``Name(field=value, …)`` with ``field(repr=False)`` left out and recursion shown as ``...``;
- assigning or deleting any attribute raises :class:`dataclasses.FrozenInstanceError`;
- copies and pickles restore the fields without assigning them (``__getstate__``/``__setstate__``).

A method the class body writes itself is kept, as ``dataclass`` keeps it.  A class this does not cover the same
way (a dataclass base, ``field(init=False)``, ``kw_only``, ``InitVar``, ``__post_init__``) gets the generated
``__init__`` and guards of ``@dataclass(frozen=True, slots=True)`` instead, with the shared methods above.
Cost: one compiled function per class at import (~0.25 ms instead of ~0.9 ms); making an instance costs what a
frozen dataclass's costs.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["record"]

_T = TypeVar("_T")


def _key(names: list[str]) -> Callable[[Any], Any]:
    """A function of an instance giving the values of ``names`` as a tuple (compared and hashed as the generated
    methods compare and hash theirs)."""
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda self: (one(self),)
    return operator.attrgetter(*names)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self.__class__._record_compare
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self.__class__._record_hash(self))


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    cls = self.__class__
    values = ", ".join(f"{name}={getattr(self, name)!r}" for name in cls._record_repr)
    return f"{cls.__qualname__}({values})"


def _setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, name) for name in self.__class__._record_names]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self.__class__._record_names, state, strict=True):
        object.__setattr__(self, name, value)


class _Factory:
    """The default of a parameter whose field has a ``default_factory`` (the factory is called when it is passed)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _compile_init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """``cls.__init__``: ``def __init__(self, a, b=<default>, c=<factory>)`` setting each field with
    ``object.__setattr__`` (cost: one ``exec`` of ~60 characters per field)."""
    # (the helper names start with "_record_": no field may, see _simple)
    scope: dict[str, Any] = {"_record_set_": object.__setattr__, "_record_factory_": _FACTORY}
    params, body = ["self"], []
    for i, f in enumerate(fields):
        name = f.name
        if f.default is not dataclasses.MISSING:
            scope[f"_record_d{i}_"] = f.default
            params.append(f"{name}=_record_d{i}_")
            body.append(f"    _record_set_(self, {name!r}, {name})")
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_record_f{i}_"] = f.default_factory
            params.append(f"{name}=_record_factory_")
            body.append(
                f"    _record_set_(self, {name!r}, _record_f{i}_() if {name} is _record_factory_ else {name})"
            )
        else:
            params.append(name)
            body.append(f"    _record_set_(self, {name!r}, {name})")
    source = f"def __init__({', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, scope)  # the one compiled function of a record
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return init


#: an annotation naming a pseudo-field or a marker (``ClassVar``, ``InitVar``, ``KW_ONLY``), as text or object
_SPECIAL = re.compile(r"\b(?:ClassVar|InitVar|KW_ONLY)\b")


def _simple(cls: type) -> bool:
    """True when the compiled ``__init__`` and the shared guards make what ``dataclass`` would: no dataclass base,
    no ``__post_init__`` nor attribute guards or state methods of its own, no ``ClassVar``/``InitVar``/``KW_ONLY``
    annotation, no ``field(init=False)`` or ``field(kw_only=True)``, no field named ``self`` or ``_record_…``, no
    required field after a defaulted one (dataclass raises its own error for that).  Cost: one look at each
    annotation (no dataclass is made)."""
    if any(hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:]) or hasattr(
        cls, "__post_init__"
    ):
        return False
    own = vars(cls)
    if any(name in own for name in ("__setattr__", "__delattr__", "__getstate__", "__setstate__")):
        return False  # (dataclass refuses or keeps those: its own way)
    defaulted = False
    for name, annotation in own.get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if _SPECIAL.search(text):  # anywhere in it, with or without a module: the general path then
            return False
        if name == "self" or name.startswith("_record_"):
            return False  # names the compiled __init__ uses itself
        value = own.get(name, dataclasses.MISSING)
        if isinstance(value, dataclasses.Field):
            if not value.init or value.kw_only is True:
                return False
            has_default = (
                value.default is not dataclasses.MISSING or value.default_factory is not dataclasses.MISSING
            )
        else:
            has_default = value is not dataclasses.MISSING
        if defaulted and not has_default:
            return False  # a required field after a defaulted one: dataclass's own error
        defaulted = defaulted or has_default
    return True


def _make(cls: type[_T], init: bool) -> type[_T]:
    if _simple(cls):
        made = dataclasses.dataclass(cls, init=False, repr=False, eq=False, frozen=False, slots=True)
        fields = dataclasses.fields(made)  # type: ignore[arg-type]
        c: Any = made
        if init and "__init__" not in vars(made):
            c.__init__ = _compile_init(made, fields)
        c.__setattr__, c.__delattr__ = _setattr, _delattr
        c.__getstate__, c.__setstate__ = _getstate, _setstate
        return _share(made, fields)
    made = dataclasses.dataclass(cls, init=init, repr=False, eq=False, frozen=True, slots=True)
    return _share(made, dataclasses.fields(made))  # type: ignore[arg-type]


def _share(made: type[_T], fields: tuple[dataclasses.Field[Any], ...]) -> type[_T]:
    """Install the shared ``__eq__``/``__hash__``/``__repr__`` unless the class body wrote its own."""
    own = vars(made)
    c: Any = made
    c._record_names = tuple(f.name for f in fields)
    c._record_compare = _key([f.name for f in fields if f.compare])
    c._record_hash = _key([f.name for f in fields if (f.compare if f.hash is None else f.hash)])
    c._record_repr = tuple(f.name for f in fields if f.repr)
    if "__eq__" not in own:
        c.__eq__ = _eq
    explicit_hash = own.get("__hash__", dataclasses.MISSING)
    if explicit_hash is dataclasses.MISSING or (explicit_hash is None and "__eq__" in own):
        c.__hash__ = _hash
    if "__repr__" not in own:
        c.__repr__ = _repr
    return made


@overload
def record(cls: type[_T], /) -> type[_T]: ...
@overload
def record(*, init: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, eq_default=True)
def record(cls: type[_T] | None = None, /, *, init: bool = True) -> Any:
    """Make ``cls`` a frozen, slotted dataclass as described above (cost: one compiled ``__init__`` unless
    ``init=False``)."""

    def wrap(c: type[_T]) -> type[_T]:
        return _make(c, init)

    return wrap if cls is None else wrap(cls)
