"""Fuzz the spec parser: whatever the document, it returns a GridSpec or raises SpecError."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.spec import ENGINE_DEFAULTS, FACTOR_DEFAULTS, GRID_DEFAULTS, GridSpec, SpecError, load_spec, parse_spec

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values TOML can hold, including the awkward ones: NaN, inf, huge ints, nested tables.
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["mnist", "digits", "after", "relu", "adam", "keras", "stacked", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
known_keys = {"grid": list(GRID_DEFAULTS), "factors": list(FACTOR_DEFAULTS), "engine": list(ENGINE_DEFAULTS)}


@st.composite
def documents(draw) -> dict:
    """A mostly well-formed spec with a few known keys given random (often wrong) values."""
    doc = {"grid": {"name": "fuzz", "seeds": 1, "validation_size": 297},
           "factors": {"dataset": "digits"}, "engine": {}}
    for _ in range(draw(st.integers(0, 4))):
        table = draw(st.sampled_from(list(known_keys)))
        key = draw(st.sampled_from(known_keys[table]) | st.text(max_size=8))
        doc[table][key] = draw(values)
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["grid", "factors", "engine", "extra"]))] = draw(values)
    return doc


def _check(parse) -> None:
    try:
        assert isinstance(parse(), GridSpec)
    except SpecError:
        pass


@SETTINGS
@given(documents())
def test_parse_spec_only_raises_spec_error(doc):
    _check(lambda: parse_spec(doc))


@SETTINGS
@given(st.dictionaries(st.text(max_size=8), values, max_size=4) | values)
def test_parse_spec_on_arbitrary_values(doc):
    _check(lambda: parse_spec(doc))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_load_spec_on_random_text(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "spec.toml"
    path.write_bytes(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    _check(lambda: load_spec(path))


def test_fuzzer_documents_are_toml_round_trippable_where_valid():
    """Sanity check of the harness itself: a valid base document parses."""
    doc = tomllib.loads('[grid]\nname = "fuzz"\nseeds = 1\nvalidation_size = 297\n[factors]\ndataset = "digits"\n')
    assert isinstance(parse_spec(doc), GridSpec)
