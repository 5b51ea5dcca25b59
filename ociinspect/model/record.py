"""``@record``: the project's frozen, slotted value classes — what ``@dataclass(frozen=True, slots=True)`` makes,
made without compiling six functions and running dataclass's general class processing for each class.

Why: on Python 3.11 ``dataclass`` compiles six small functions from source for each frozen class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``) and walks its general class machinery: a
command importing ~40 such classes spent a quarter of its CPU in the parser at start-up, and ~15 ms in all.  A
record is a dataclass (:func:`dataclasses.fields`, :func:`dataclasses.replace`, :func:`dataclasses.asdict`,
``__dataclass_fields__`` with the same ``Field`` objects, ``__dataclass_params__``, ``__match_args__`` and
``__slots__`` as usual) whose ``__init__`` is made here — the same parameters, defaults and default factories,
each field set with ``object.__setattr__`` as a frozen dataclass's is, from code compiled once per shape (fields
with or without a default factory) with the fields' names put in — and whose other methods are shared functions
that behave as the generated ones:

- equal when the other object is of the very same class and the compared fields (``field(compare=False)`` left
  out) are equal, else ``NotImplemented``; the hash is that of the hashed fields (``field(hash=…)`` honoured);
- ``Name(field=value, …)`` with ``field(repr=False)`` left out and recursion shown as ``...``;
- assigning or deleting any attribute raises :class:`dataclasses.FrozenInstanceError`;
- copies and pickles restore the fields without assigning them (``__getstate__``/``__setstate__``).

A method the class body writes itself is kept, as ``dataclass`` keeps it.  A class this does not cover the same
way (a dataclass base, ``field(init=False)``, ``kw_only``, ``InitVar``, its own ``__slots__``,
a mutable default) is made by ``@dataclass(frozen=True, slots=True)`` itself (its errors included), with the
shared methods above.  Cost: ~0.1 ms a class at import (~0.4 ms with dataclass), one ``exec`` per new shape;
making an instance costs what a frozen dataclass's costs.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect  # (imported by dataclasses already)
import operator
import re
import reprlib
from collections.abc import Callable
from types import CodeType, FunctionType
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


#: compiled ``__init__`` code by shape (per field: does it have a default factory?; is ``__post_init__`` called?),
#: for :func:`_compile_init`
_templates: dict[tuple[tuple[bool, ...], bool], CodeType] = {}


def _template(shape: tuple[bool, ...], post_init: bool) -> CodeType:
    """The code of ``def __init__(self, _record_p0_, …)`` setting each field of ``shape`` (its default factory
    called when the parameter is the factory marker), then calling ``self.__post_init__()`` when ``post_init``
    (as dataclass's does), compiled once per shape (one ``exec``)."""
    code = _templates.get((shape, post_init))
    if code is None:
        params, body = ["self"], []
        for i, factory in enumerate(shape):
            name = f"_record_p{i}_"
            params.append(name)
            value = f"_record_f{i}_() if {name} is _record_factory_ else {name}" if factory else name
            body.append(f"    _record_set_(self, {name!r}, {value})")
        if post_init:
            body.append("    self.__post_init__()")
        source = f"def __init__({', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
        scope: dict[str, Any] = {}
        exec(source, scope)  # the compiled function of a record shape
        code = _templates[shape, post_init] = scope["__init__"].__code__
    return code


def _compile_init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """``cls.__init__``: ``def __init__(self, a, b=<default>, c=<factory>)`` setting each field with
    ``object.__setattr__``, made from its shape's code (:func:`_template`) with the fields' names put in
    (cost: ~2 µs, plus one ``exec`` of ~60 characters per field the first time a shape is seen)."""
    # (the helper names start with "_record_": no field may, see _simple)
    scope: dict[str, Any] = {"_record_set_": object.__setattr__, "_record_factory_": _FACTORY}
    defaults: list[Any] = []
    names = {f"_record_p{i}_": f.name for i, f in enumerate(fields)}
    for i, f in enumerate(fields):
        if f.default is not dataclasses.MISSING:
            defaults.append(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_record_f{i}_"] = f.default_factory
            defaults.append(_FACTORY)
    shape = tuple(f.default_factory is not dataclasses.MISSING for f in fields)
    template = _template(shape, hasattr(cls, "__post_init__"))
    code = template.replace(
        co_varnames=("self", *names.values()),
        co_consts=tuple(names.get(c, c) if isinstance(c, str) else c for c in template.co_consts),
        co_qualname=f"{cls.__qualname__}.__init__",
    )
    init = FunctionType(code, scope, "__init__", tuple(defaults) or None)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return init


#: an annotation naming a pseudo-field or a marker (``ClassVar``, ``InitVar``, ``KW_ONLY``), as text or object
_SPECIAL = re.compile(r"\b(?:ClassVar|InitVar|KW_ONLY)\b")


def _simple(cls: type) -> bool:
    """True when the compiled ``__init__`` and the shared guards make what ``dataclass`` would: no dataclass base,
    no attribute guards or state methods of its own, no ``ClassVar``/``InitVar``/``KW_ONLY``
    annotation, no ``field(init=False)`` or ``field(kw_only=True)``, no field named ``self`` or ``_record_…``, no
    required field after a defaulted one (dataclass raises its own error for that).  Cost: one look at each
    annotation (no dataclass is made)."""
    if any(hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:]):
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
        made = _build(cls, init)
        if made is not None:
            return made
    made = dataclasses.dataclass(cls, init=init, repr=False, eq=False, frozen=True, slots=True)
    return _share(made, dataclasses.fields(made))  # type: ignore[arg-type]


#: the marker of a regular field in ``Field._field_type`` (what :func:`dataclasses.fields` keeps); ``None`` on a
#: Python whose dataclasses lack it: every record is then made by ``dataclass`` itself
_FIELD: object = getattr(dataclasses, "_FIELD", None)
_REPLACE: object = getattr(dataclasses, "_replace", None)
_params: dict[bool, object] = {}


def _dataclass_params(init: bool) -> object:
    """The ``__dataclass_params__`` of ``@dataclass(frozen=True, slots=True, init=init)`` (taken from one such
    class, made once per process when first asked for)."""
    if init not in _params:

        class _Template:
            """A frozen, slotted dataclass without fields: its parameters are every record's."""

        made = dataclasses.dataclass(_Template, init=init, frozen=True, slots=True)
        _params[init] = made.__dataclass_params__  # type: ignore[attr-defined]
    return _params[init]


class _Params:
    """A record's ``__dataclass_params__``: looked up (:func:`_dataclass_params`) when first read — by
    ``dataclass`` itself, for a subclass — not at every record's creation (~1 ms of dataclass's code)."""

    __slots__ = ("init",)

    def __init__(self, init: bool) -> None:
        self.init = init

    def __get__(self, obj: object, owner: type | None = None) -> object:
        return _dataclass_params(self.init)


_LAZY_PARAMS = {True: _Params(True), False: _Params(False)}


def _build(cls: type[_T], init: bool) -> type[_T] | None:
    """The record of a class :func:`_simple` accepted, made as ``@dataclass(frozen=True, slots=True)`` makes it
    — the same ``Field`` objects in ``__dataclass_fields__``, ``__dataclass_params__``, ``__match_args__``, the
    class made again with ``__slots__`` — without dataclass's general class processing (~0.3 ms a class at
    import, most of a record's cost).  ``None`` for what is left to ``dataclass`` (its own errors included): no
    ``_FIELD`` marker, a ``__slots__`` of its own, a mutable or descriptor default.  A class without a docstring
    gets dataclass's (its name and ``__init__``'s signature).  Cost: one class creation and one compiled ``__init__``."""
    own = vars(cls)
    if _FIELD is None or "__slots__" in own:
        return None
    namespace = dict(own)
    fields: dict[str, dataclasses.Field[Any]] = {}
    for name, annotation in own.get("__annotations__", {}).items():
        value = namespace.pop(name, dataclasses.MISSING)
        if isinstance(value, dataclasses.Field):
            f = value
        elif value.__class__.__hash__ is None or hasattr(value.__class__, "__get__"):
            return None  # a mutable default (dataclass's ValueError) or a descriptor (read through it)
        else:
            f = dataclasses.field(default=value)
        if f.default is not dataclasses.MISSING and f.default.__class__.__hash__ is None:
            return None
        f.name, f.type = name, annotation
        f._field_type = _FIELD  # type: ignore[attr-defined]
        if f.kw_only is dataclasses.MISSING:
            f.kw_only = False
        fields[name] = f
    names = tuple(fields)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = names
    namespace["__dataclass_fields__"] = fields
    namespace["__dataclass_params__"] = _LAZY_PARAMS[init]
    namespace.setdefault("__match_args__", names)
    if _REPLACE is not None:  # Python 3.13+: dataclass gives a class __replace__ (copy.replace)
        namespace.setdefault("__replace__", _REPLACE)
    meta: Any = type(cls)
    made: Any = meta(cls.__name__, cls.__bases__, namespace)
    made.__qualname__ = cls.__qualname__
    ordered = tuple(fields.values())
    if init and "__init__" not in own:
        made.__init__ = _compile_init(made, ordered)
    made.__setattr__, made.__delattr__ = _setattr, _delattr
    made.__getstate__, made.__setstate__ = _getstate, _setstate
    if not own.get("__doc__"):
        try:
            made.__doc__ = cls.__name__ + str(inspect.signature(made)).replace(" -> None", "")
        except (TypeError, ValueError):
            made.__doc__ = cls.__name__
    abc.update_abstractmethods(made)
    return _share(made, ordered)


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
