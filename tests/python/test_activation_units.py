"""Configuration parsing, process detection and role labels (pure functions, in-process)."""

from __future__ import annotations

import os

import pytest

from profilemate import config, probes
from profilemate.activation import detect


def test_defaults():
    c = config.load({})
    # One folder per user (docs/OUTPUTS.md, "Private by default").
    assert c.mode == "off" and c.dir == f"/tmp/profilemate-{os.geteuid()}" and c.log == "info"
    assert c.probes == config.categories() and c.fault_inject is False and c.trace is True


@pytest.mark.parametrize(
    "raw,mode",
    [
        ("1", "auto"),
        ("true", "auto"),
        (" ON ", "auto"),
        ("auto", "auto"),
        ("force", "force"),
        ("0", "off"),
        ("off", "off"),
        ("", "off"),
    ],
)
def test_modes(raw, mode):
    assert config.load({"PROFILEMATE": raw}).mode == mode


def test_aliases_with_notice():
    c = config.load({"VLLM_ENABLE_PROFILING": "1", "VLLM_PROFILING_DIR": "/x"})
    assert c.mode == "auto" and c.dir == "/x"
    assert len(c.notices) == 2 and "use PROFILEMATE=1" in c.notices[0]
    # The project's own name wins; no notice then.
    c = config.load({"VLLM_ENABLE_PROFILING": "1", "PROFILEMATE": "0"})
    assert c.mode == "off" and "VLLM_ENABLE_PROFILING" not in " ".join(c.notices)


@pytest.mark.parametrize(
    "env,mode",
    [
        ({}, "off"),
        ({"PROFILEMATE": "1"}, "auto"),
        ({"PROFILEMATE": " Force "}, "force"),
        ({"PROFILEMATE": ""}, "off"),
        ({"VLLM_ENABLE_PROFILING": "yes"}, "auto"),
        ({"VLLM_ENABLE_PROFILING": "1", "PROFILEMATE": "0"}, "off"),  # our own name wins
        ({"VLLM_ENABLE_PROFILING": "0", "PROFILEMATE": "force"}, "force"),
        ({"PROFILEMATE_DIR": "/x"}, "off"),
    ],
)
def test_mode_from_env_is_the_one_reading(env, mode):
    assert config.mode_from_env(env) == mode
    assert config.load(env).mode == mode


def test_mode_from_env_reads_os_environ(monkeypatch):
    monkeypatch.delenv("VLLM_ENABLE_PROFILING", raising=False)
    monkeypatch.setenv("PROFILEMATE", "force")
    assert config.mode_from_env() == "force"
    monkeypatch.delenv("PROFILEMATE")
    assert config.mode_from_env() == "off"
    assert config.mode_variable() == ("PROFILEMATE", None)


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"PROFILEMATE": "maybe"}, "PROFILEMATE='maybe' is not valid (allowed: 1/true/on/auto"),
        (
            {"PROFILEMATE_LOG": "trace"},
            "PROFILEMATE_LOG='trace' is not valid (allowed: info, debug, warning)",
        ),
        ({"PROFILEMATE_PROBES": "cpu_ops,nope"}, "PROFILEMATE_PROBES='cpu_ops,nope' is not valid"),
        (
            {"PROFILEMATE_FAULT_INJECT": "2"},
            "PROFILEMATE_FAULT_INJECT='2' is not valid (allowed: 1, 0",
        ),
        ({"PROFILEMATE_RING_CAPACITY": "lots"}, "PROFILEMATE_RING_CAPACITY='lots' is not valid"),
        ({"PROFILEMATE_RING_CAPACITY": "1000"}, "(allowed: a power of two from 64 to 16777216)"),
        ({"PROFILEMATE_RING_CAPACITY": "32"}, "PROFILEMATE_RING_CAPACITY='32' is not valid"),
        ({"PROFILEMATE_FLUSH_MS": "5000"}, "(allowed: an integer from 1 to 1000)"),
        ({"PROFILEMATE_SESSION_START_NS": "x"}, "PROFILEMATE_SESSION_START_NS='x' is not valid"),
        # The message names the variable the user set.
        ({"VLLM_ENABLE_PROFILING": "yess"}, "VLLM_ENABLE_PROFILING='yess' is not valid"),
    ],
)
def test_malformed_values_name_variable_and_allowed(env, needle):
    with pytest.raises(config.ConfigError) as e:
        config.load(env)
    assert needle in str(e.value)


def test_core_limits_accepted():
    c = config.load({"PROFILEMATE_RING_CAPACITY": "64", "PROFILEMATE_FLUSH_MS": "1000"})
    assert c.ring_capacity == 64 and c.flush_interval_ms == 1000
    assert config.load({"PROFILEMATE_RING_CAPACITY": "16777216"}).ring_capacity == 1 << 24


def test_categories_match_probe_modules():
    assert set(config.categories()) == set(probes.category_names()) >= {"cpu_ops"}


@pytest.mark.parametrize(
    "argv,why",
    [
        (["/venv/bin/python", "/venv/bin/vllm", "serve", "m"], "vllm CLI"),
        (["/venv/bin/python", "-m", "vllm.entrypoints.cli.main", "serve"], "python -m vllm"),
        (["python3", "-X", "dev", "-m", "vllm.entrypoints.openai.api_server"], "python -m vllm"),
        (["python3", "-mvllm.entrypoints.cli.main"], "python -m vllm"),
        (["python3", "train.py", "vllm"], None),
        (["python3", "-m", "pytest"], None),
        (["python3", "-c", "import vllm"], None),
    ],
)
def test_argv_detection(argv, why):
    assert detect.argv_says_vllm(argv) == why


@pytest.mark.parametrize(
    "name,hint,role",
    [
        ("MainProcess", None, "api"),
        ("MainProcess", "worker-3", "worker-3"),
        ("EngineCore", None, "enginecore"),
        ("EngineCore_DP2", None, "enginecore-dp2"),
        ("VllmWorker-0", None, "worker-0"),
        ("VllmWorker-12", "enginecore", "worker-12"),
        ("SpawnProcess-3", None, "spawnprocess-3"),
        ("!!!", None, "proc"),
    ],
)
def test_process_roles(name, hint, role):
    assert detect.process_role(name, hint) == role


@pytest.mark.parametrize(
    "argv,role",
    [
        (["python3", "-m", "vllm.model_executor.models.registry"], "helper-registry"),
        (["python3", "-m", "vllm.entrypoints.openai.api_server"], "api"),
        (["python3", "script.py"], "api"),
    ],
)
def test_vllm_helper_processes_are_not_the_api(monkeypatch, argv, role):
    # vLLM 0.32.0 inspects model architectures in `python -m vllm.model_executor.models.registry`
    # when its cache is cold: such a helper must not appear as a second API process.
    monkeypatch.setattr("sys.orig_argv", argv)
    assert detect.process_role("MainProcess") == role


def test_one_log_prefix(capsys):
    import logging
    import os

    from profilemate import _log

    assert _log.prefix() == f"[profilemate {os.getpid()}] "
    record = logging.LogRecord("profilemate", logging.INFO, __file__, 1, "hello", None, None)
    assert logging.Formatter(_log.PREFIX_FORMAT + "%(message)s").format(record) == (
        _log.prefix() + "hello"
    )
    _log.notice("plain")
    _log.notice_once("unit-test once")
    _log.notice_once("unit-test once")
    assert capsys.readouterr().err == f"{_log.prefix()}plain\n{_log.prefix()}unit-test once\n"
