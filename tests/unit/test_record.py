"""``@record`` (ociinspect/model/record.py) behaves as ``@dataclass(frozen=True, slots=True)`` and compiles fewer
functions at import."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import functools
import pickle
from dataclasses import field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ociinspect.model import record as record_module
from ociinspect.model.record import record


@record
class Rec:
    """A record."""

    a: Any
    b: Any = 0
    c: Any = field(default=None, compare=False)
    d: Any = field(default=None, repr=False)
    e: Any = field(default=None, hash=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Dc:
    """The same fields as a frozen dataclass."""

    a: Any
    b: Any = 0
    c: Any = field(default=None, compare=False)
    d: Any = field(default=None, repr=False)
    e: Any = field(default=None, hash=False)


values = st.one_of(
    st.integers(),
    st.text(max_size=5),
    st.none(),
    st.floats(allow_nan=True),
    st.tuples(st.integers()),
    st.booleans(),
)
five = st.tuples(values, values, values, values, values)


@given(five, five)
def test_equality_hash_and_repr_are_the_dataclass_ones(x: tuple[Any, ...], y: tuple[Any, ...]) -> None:
    rx, ry, dx, dy = Rec(*x), Rec(*y), Dc(*x), Dc(*y)
    assert (rx == ry) is (dx == dy)
    assert (rx != ry) is (dx != dy)
    assert repr(rx).replace("Rec(", "Dc(", 1) == repr(dx)
    if rx == ry:
        assert hash(rx) == hash(ry)
    assert (hash(rx) == hash(Rec(*x))) is True


def test_a_field_left_out_of_compare_or_hash_or_repr_is_left_out() -> None:
    assert Rec(1, 2, c="x") == Rec(1, 2, c="y")
    assert hash(Rec(1, 2, e=[1])) == hash(Rec(1, 2, e=[2]))  # an unhashable value in a field not hashed
    assert Rec(1, 2, e=1) != Rec(1, 2, e=2)  # but compared
    assert "d=" not in repr(Rec(1, d="secret"))


def test_other_classes_are_not_equal_and_not_implemented() -> None:
    other: Any = Dc(1)
    assert Rec(1) != other
    assert Rec(1).__eq__(other) is NotImplemented
    same_values: Any = (1, 0)
    assert Rec(1) != same_values
    assert len({Rec(1), Rec(1), Rec(2)}) == 2


def test_frozen_slotted_replaceable_and_picklable() -> None:
    r = Rec(1, [2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del r.a
    assert not hasattr(r, "__dict__")
    assert dataclasses.replace(r, a=5) == Rec(5, [2])
    assert dataclasses.asdict(r) == {"a": 1, "b": [2], "c": None, "d": None, "e": None}
    assert pickle.loads(pickle.dumps(r)) == r
    assert copy.deepcopy(r) == r


def test_methods_the_class_writes_itself_are_kept() -> None:
    @record
    class Own:
        x: int

        def __eq__(self, other: object) -> bool:
            return True

        def __repr__(self) -> str:
            return "mine"

    assert Own(1) == Own(2)
    assert repr(Own(1)) == "mine"
    assert hash(Own(1)) == hash(Own(1))  # __eq__ alone: the hash is still made, as dataclass makes it

    @record(init=False)
    class Made:
        x: int

        def __init__(self, v: int) -> None:
            object.__setattr__(self, "x", v * 2)

    assert Made(2) == Made(2) and repr(Made(2)).endswith(".Made(x=4)")  # __qualname__, as dataclass


def test_a_recursive_value_is_shown_as_dots() -> None:
    box: list[Any] = []
    r = Rec(box)
    box.append(r)
    assert repr(r) == "Rec(a=[...], b=0, c=None, e=None)"


def test_a_record_compiles_one_function_where_a_frozen_dataclass_compiles_six(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    real = builtins.exec

    def counting(src: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(src))
        return real(src, *args, **kwargs)

    monkeypatch.setattr(builtins, "exec", counting)

    @dataclasses.dataclass(frozen=True, slots=True)
    class D:
        x: int
        y: list[int] = field(default_factory=list)

    made_by_dataclass = len(compiled)
    compiled.clear()
    monkeypatch.setattr(record_module, "_templates", {})  # as if no record of R's shape had been made yet

    @record
    class R:
        x: int
        y: list[int] = field(default_factory=list)
        z: int = 0
        w: str = ""
        v: str = ""
        u: str = ""

    assert made_by_dataclass == 6  # __init__, __repr__, __eq__, __hash__, __setattr__, __delattr__
    assert len(compiled) == 1 and compiled[0].startswith("def __init__(")
    compiled.clear()

    @record
    class S:  # the same shape, other names and defaults: R's code with S's names put in, nothing compiled
        a: str
        b: list[int] = field(default_factory=lambda: [1])
        c: int = 5
        d: str = "d"
        e: str = "e"
        f: str = "f"

    assert compiled == []
    assert S("s") == S("s", [1], 5, "d", "e", "f") and S(b=[], a="t").b == []
    assert R(1).y == [] and R(1, [2], 3, "w") == R(x=1, y=[2], z=3, w="w", v="", u="")
    with pytest.raises(TypeError, match="unexpected keyword argument 'x'"):
        S(x=1)  # type: ignore[call-arg]
    assert S.__init__.__code__.co_varnames[:7] == ("self", "a", "b", "c", "d", "e", "f")
    assert S.__init__.__qualname__.endswith("S.__init__") and S.__init__.__module__ == __name__


def test_the_dataclass_view_of_a_record_is_the_frozen_dataclass_one() -> None:
    """fields, params, match args, slots and the docstring dataclass writes for a class without one."""

    def shape(deco: Any) -> Any:
        class Shape:
            a: int
            b: str = "x"
            c: list[int] = field(default_factory=list, repr=False, metadata={"k": 1})

        return deco(Shape)

    rec, dc = shape(record), shape(dataclasses.dataclass(frozen=True, slots=True))
    keys = (
        "name",
        "type",
        "default",
        "default_factory",
        "init",
        "repr",
        "hash",
        "compare",
        "metadata",
        "kw_only",
    )
    for fr, fd in zip(dataclasses.fields(rec), dataclasses.fields(dc), strict=True):
        assert [getattr(fr, k) for k in keys] == [getattr(fd, k) for k in keys]
    assert rec.__dataclass_params__.frozen and repr(rec.__dataclass_params__) == repr(dc.__dataclass_params__)
    assert (rec.__match_args__, rec.__slots__) == (dc.__match_args__, dc.__slots__) == (("a", "b", "c"),) * 2
    assert rec.__doc__ == dc.__doc__ == "Shape(a: 'int', b: 'str' = 'x', c: 'list[int]' = <factory>)"
    assert dataclasses.is_dataclass(rec) and not hasattr(rec(1), "__dict__")
    assert dataclasses.asdict(rec(1, "y", [2])) == {"a": 1, "b": "y", "c": [2]}

    @dataclasses.dataclass(frozen=True)
    class Sub(rec):  # type: ignore[valid-type,misc]  # dataclass reads the record's params: frozen, as it is
        d: int = 0

    assert Sub(1, d=4).d == 4 and Sub(1).c == []


def test_what_dataclass_refuses_it_still_refuses() -> None:
    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="already specifies __slots__"):

        @record
        class Slotted:
            __slots__ = ("a",)
            a: int


# ------------------------------------------------------------------ __init__ against dataclass's, any shape


def _pair(spec: list[tuple[str, Any]]) -> tuple[type, type]:
    """A record and a frozen dataclass with the same fields: ("plain"|"default"|"factory", value) each."""
    namespace: dict[str, Any] = {"__annotations__": {}}
    for i, (kind, value) in enumerate(spec):
        name = f"f{i}"
        namespace["__annotations__"][name] = "Any"
        if kind == "default":
            namespace[name] = value
        elif kind == "factory":
            namespace[name] = field(default_factory=functools.partial(list, [value]))
    made: list[type] = []
    for deco in (record, dataclasses.dataclass(frozen=True, slots=True)):
        made.append(
            deco(type("Shape", (), {**namespace, "__annotations__": dict(namespace["__annotations__"])}))
        )
    return made[0], made[1]


shapes = st.lists(
    st.tuples(st.sampled_from(["plain", "default", "factory"]), st.integers(-3, 3)), max_size=5
).map(lambda fs: sorted(fs, key=lambda f: f[0] != "plain"))  # required fields first, as a dataclass needs
calls = st.tuples(
    st.lists(st.integers(-3, 3), max_size=6),
    st.dictionaries(
        st.sampled_from(["f0", "f1", "f2", "f3", "f4", "f5", "zz"]), st.integers(-3, 3), max_size=3
    ),
)


def _outcome(cls: type, args: list[int], kwargs: dict[str, int]) -> Any:
    try:
        obj = cls(*args, **kwargs)
    except TypeError:
        return TypeError
    return [getattr(obj, f.name) for f in dataclasses.fields(obj)]


@given(shapes, calls)
def test_init_takes_and_sets_what_the_dataclass_init_does(spec: list[tuple[str, Any]], call: Any) -> None:
    rec, dc = _pair(spec)
    args, kwargs = call
    assert _outcome(rec, args, kwargs) == _outcome(dc, args, kwargs)
    ours, theirs = getattr(rec, "__init__").__code__, getattr(dc, "__init__").__code__  # noqa: B009
    assert ours.co_varnames[: ours.co_argcount] == theirs.co_varnames[: theirs.co_argcount]


def test_a_factory_is_called_for_each_instance_and_not_when_given() -> None:
    @record
    class Box:
        items: list[int] = field(default_factory=list)

    a, b = Box(), Box()
    assert a.items == [] and a.items is not b.items
    given_items = [1]
    assert Box(given_items).items is given_items
    assert "<factory>" in repr(Box.__init__.__defaults__)


@pytest.mark.parametrize("shape", ["init_false", "kw_only", "initvar", "base"])
def test_shapes_the_compiled_init_does_not_cover_get_the_dataclass_one(shape: str) -> None:
    if shape == "init_false":

        @record
        class A:
            x: int
            y: int = field(default=7, init=False)

        assert A(1).y == 7
        with pytest.raises(TypeError):
            A(1, 2)
    elif shape == "kw_only":

        @record
        class B:
            x: int = field(kw_only=True)

        assert B(x=1).x == 1
        with pytest.raises(TypeError):
            B(1)
    elif shape == "initvar":

        @record
        class C:
            x: int
            scale: dataclasses.InitVar[int] = 1

            def __post_init__(self, scale: int) -> None:
                object.__setattr__(self, "x", self.x * scale)

        assert C(2, 3).x == 6
    else:

        @dataclasses.dataclass(frozen=True)
        class Base:
            x: int

        @record
        class D(Base):
            y: int = 0

        assert D(1, 2) == D(1, 2) and (D(1, 2).x, D(1, 2).y) == (1, 2)
        with pytest.raises(dataclasses.FrozenInstanceError):
            D(1).y = 3  # type: ignore[misc]


def test_awkward_definitions_behave_as_dataclass_says() -> None:
    with pytest.raises(TypeError, match="non-default argument"):

        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]

    @record
    class Names:
        self_: int
        _record_set_: int = 2  # a name the compiled __init__ uses itself: dataclass's __init__ then

    assert Names(1)._record_set_ == 2 and Names(1, 3) == Names(1, 3)


def test_post_init_runs_after_the_fields_are_set_as_dataclass_runs_it() -> None:
    calls: list[str] = []

    def make(deco: Any) -> Any:
        class Checked:
            """A record that validates and normalises in __post_init__."""

            low: int
            high: int = 10
            names: tuple[str, ...] = field(default_factory=tuple)

            def __post_init__(self) -> None:
                calls.append(type(self).__name__)
                if self.low > self.high:
                    raise ValueError("low above high")
                object.__setattr__(self, "names", tuple(sorted(self.names)))

        return deco(Checked)

    rec, dc = make(record), make(dataclasses.dataclass(frozen=True, slots=True))
    assert "_record_set_" in rec.__init__.__code__.co_names  # the compiled path, not dataclass's
    for args in ((1,), (1, 5, ("b", "a")), (11,), (3, 2)):
        outcomes = []
        for cls in (rec, dc):
            try:
                obj = cls(*args)
            except ValueError as exc:
                outcomes.append(str(exc))
            else:
                outcomes.append((obj.low, obj.high, obj.names))
        assert outcomes[0] == outcomes[1]
    assert len(calls) == 8
    from ociinspect.registry.settings import RegistrySettings

    assert "_record_set_" in RegistrySettings.__init__.__code__.co_names
    with pytest.raises(ValueError, match="timeouts must be positive"):
        RegistrySettings(connect_timeout=0)
    assert RegistrySettings(hosts={"Reg.Example:5000": RegistrySettings().default}).hosts.keys() == {
        "reg.example:5000"
    }
