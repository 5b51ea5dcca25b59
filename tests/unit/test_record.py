"""``@record`` (ociinspect/model/record.py) behaves as ``@dataclass(frozen=True, slots=True)`` and compiles fewer
functions at import."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import pickle
from dataclasses import field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_a_record_compiles_half_the_functions_a_frozen_dataclass_does(
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

    made_by_dataclass = len(compiled)
    compiled.clear()

    @record
    class R:
        x: int

    assert made_by_dataclass == 6  # __init__, __repr__, __eq__, __hash__, __setattr__, __delattr__
    assert len(compiled) == 3  # __init__, __setattr__, __delattr__
