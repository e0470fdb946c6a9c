"""The core's start() defaults and limits have one source (cpp/include/profilemate/engine.hpp).

profilemate.config keeps Python copies (it must not import the extension at start-up); these tests
check that the copies equal what _core exports, and that importing config loads no extension.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from profilemate import config

_core = pytest.importorskip("profilemate._core")

SHARED = (
    "RING_CAPACITY_DEFAULT",
    "RING_CAPACITY_MIN",
    "RING_CAPACITY_MAX",
    "FLUSH_INTERVAL_MS_DEFAULT",
    "FLUSH_INTERVAL_MS_MIN",
    "FLUSH_INTERVAL_MS_MAX",
    "TRACE_DEFAULT",
)


@pytest.mark.parametrize("name", SHARED)
def test_python_constant_equals_core(name):
    assert getattr(config, name) == getattr(_core, name)
    assert type(getattr(config, name)) is type(getattr(_core, name))


def test_every_exported_limit_is_mirrored():
    exported = {n for n in dir(_core) if n.startswith(("RING_CAPACITY_", "FLUSH_INTERVAL_MS_"))}
    assert exported | {"TRACE_DEFAULT"} == set(SHARED)


def test_binding_defaults_are_the_exported_constants():
    # start()'s keyword defaults, as nanobind renders them in the signature.
    sig = _core.start.__doc__.splitlines()[0]
    assert f"ring_capacity: int = {_core.RING_CAPACITY_DEFAULT}" in sig
    assert f"flush_interval_ms: int = {_core.FLUSH_INTERVAL_MS_DEFAULT}" in sig
    assert f"trace: bool = {_core.TRACE_DEFAULT}" in sig


def test_config_defaults_and_limits_use_the_constants():
    c = config.load({})
    assert (c.ring_capacity, c.flush_interval_ms, c.trace) == (
        _core.RING_CAPACITY_DEFAULT,
        _core.FLUSH_INTERVAL_MS_DEFAULT,
        _core.TRACE_DEFAULT,
    )
    for name, ok, bad_low, bad_high in (
        (
            "PROFILEMATE_RING_CAPACITY",
            _core.RING_CAPACITY_MAX,
            _core.RING_CAPACITY_MIN // 2,
            _core.RING_CAPACITY_MAX * 2,
        ),
        (
            "PROFILEMATE_FLUSH_MS",
            _core.FLUSH_INTERVAL_MS_MIN,
            _core.FLUSH_INTERVAL_MS_MIN - 1,
            _core.FLUSH_INTERVAL_MS_MAX + 1,
        ),
    ):
        config.load({name: str(ok)})
        for bad in (bad_low, bad_high):
            with pytest.raises(config.ConfigError):
                config.load({name: str(bad)})


def test_cli_help_names_the_constants(capsys):
    from profilemate import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{_core.RING_CAPACITY_MIN}..{_core.RING_CAPACITY_MAX}" in text
    assert f"(default {_core.RING_CAPACITY_DEFAULT})" in text
    assert f"{_core.FLUSH_INTERVAL_MS_MIN}..{_core.FLUSH_INTERVAL_MS_MAX}" in text
    assert f"(default {_core.FLUSH_INTERVAL_MS_DEFAULT})" in text


def test_importing_config_does_not_import_the_core():
    code = (
        "import json, sys; import profilemate.config; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('profilemate'))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "profilemate.config" in loaded
    assert "profilemate._core" not in loaded, loaded
