"""`profilemate doctor` checks the built core against the committed stub, not a hand-kept list."""

from __future__ import annotations

import textwrap

import pytest

from profilemate import doctor

# What the doctor's hand-written list held before the stub became the source.
FORMER_HAND_LIST = (
    "now_ns", "start", "stop", "flush", "enabled", "process_dir", "define_table", "intern",
    "record_span", "record_instant", "record_counter", "set_step", "current_step", "timed", "stats",
)  # fmt: skip


def test_contract_comes_from_the_stub_next_to_the_package():
    assert doctor.CORE_STUB.name == "_core.pyi" and doctor.CORE_STUB.is_file()
    contract = doctor.core_contract()
    assert set(FORMER_HAND_LIST) <= set(contract)
    assert {"TimedCallable", "RING_CAPACITY_DEFAULT", "TRACE_DEFAULT"} <= set(contract)
    assert not [n for n in contract if n.startswith("_")]


def test_contract_parses_defs_classes_and_constants(tmp_path):
    stub = tmp_path / "_core.pyi"
    stub.write_text(
        textwrap.dedent(
            '''
            """doc"""
            from collections.abc import Sequence
            import types

            def alpha(x: int = 1) -> int:
                """a"""

            LIMIT: int = 5

            class Thing:
                def method(self) -> None: ...
                attr: int = ...

            def _private() -> None: ...

            def alpha(x: str) -> str: ...
            '''
        )
    )
    assert doctor.core_contract(stub) == ("alpha", "LIMIT", "Thing")


def test_core_lacking_a_stub_name_is_a_problem(tmp_path):
    pytest.importorskip("profilemate._core")
    stub = tmp_path / "_core.pyi"
    stub.write_text("def now_ns() -> int: ...\ndef brand_new(x: int) -> None: ...\nZ: int = 1\n")
    core, problems = doctor.check_core(doctor.core_contract(stub))
    assert core["missing"] == ["brand_new", "Z"]
    assert problems == ["profilemate._core lacks brand_new, Z"]


def test_built_core_matches_its_stub():
    pytest.importorskip("profilemate._core")
    core, problems = doctor.check_core()
    assert core["missing"] == [] and problems == []
    assert core["version"]


def test_unreadable_stub_is_a_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "CORE_STUB", tmp_path / "missing.pyi")
    _core, problems = doctor.check_core()
    assert any("cannot read the core's API stub" in p and "missing.pyi" in p for p in problems)
