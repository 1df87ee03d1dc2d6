"""The configuration reference is generated from the schema: every key is on the page, with a description."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bdunlearn.reports.config_reference import (
    REGENERATE,
    all_keys,
    field_help,
    keys,
    render,
)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@dataclass
class _Parent:
    inherited: int = 1  # the parent's word
    # the line above
    # and the one above that
    above: str = "x"
    beside: float = 0.5  # a comment beside,
    #                      continued below
    bare: int = 0


@dataclass
class _Child(_Parent):
    inherited: int = 2
    nested: list = field(default_factory=list)  # a list


def test_descriptions_come_from_the_comments_beside_or_above_a_field_or_its_parents():
    assert field_help(_Child, "inherited") == "the parent's word"
    assert field_help(_Parent, "above") == "the line above and the one above that"
    assert field_help(_Parent, "beside") == "a comment beside, continued below"
    assert field_help(_Parent, "bare") == ""
    rows = {k.key: k for k in keys(_Child, "x.")}
    assert rows["x.inherited"].default == "`2`" and rows["x.nested"].help == "a list"


def test_every_schema_and_plugin_key_has_a_description():
    missing = sorted({k.key for k in all_keys() if not k.help})
    assert not missing, f"write a comment beside (or above) these fields in their dataclass: {missing}"


def test_the_committed_page_is_the_generated_one():
    page = PAGE.read_text()
    absent = sorted({k.key for k in all_keys()} - {line.split("`")[1] for line in page.splitlines() if line.startswith("| `")})
    assert not absent, f"keys missing from {PAGE.name}: {absent}; regenerate it: {REGENERATE}"
    assert page == render(), f"{PAGE} is stale; regenerate it: {REGENERATE}"
