"""The import watchdog, each import order in a fresh interpreter (stdlib-only, a fake package)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FAKE = {
    "fakepkg/__init__.py": "LOADED = True\n",
    "fakepkg/engine.py": """
        CALLS = []
        class Scheduler:
            def schedule(self, n):
                CALLS.append(n)
                return n * 2
        def set_forward_context(x):
            return ("ctx", x)
    """,
    "fakepkg/runner.py": """
        from fakepkg.engine import set_forward_context
        def run(x):
            return set_forward_context(x)
    """,
    "fakepkg/lazy/__init__.py": "",
    "fakepkg/lazy/deep.py": "VALUE = 41\n",
    **{f"fakepkg/m{i}.py": f"import time\ntime.sleep(0.01)\nN = {i}\n" for i in range(8)},
}


@pytest.fixture
def fakepkg(tmp_path: Path) -> Path:
    for rel, body in FAKE.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body))
    return tmp_path


def _env(root: Path) -> dict[str, str]:
    # Keep an inherited PYTHONPATH (e.g. src/ when this runs under another Python without an
    # installed profilemate); nothing else from the environment, so no PROFILEMATE=1 leaks in.
    paths = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(paths), "PATH": "/usr/bin:/bin"}


def run_py(code: str, root: Path, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter with ``root`` on sys.path; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


PRELUDE = """
import importlib, json, sys, threading
from profilemate.hooks.watchdog import ModuleWatchdog, get_watchdog
wd = get_watchdog()
seen = []
def cb(module):
    # Runs after the body: its names exist.
    seen.append((module.__name__, hasattr(module, "Scheduler") or hasattr(module, "VALUE")))
"""


def test_hook_installed_before_import_runs_after_body(fakepkg):
    out = run_py(
        PRELUDE
        + """
wd.install()
wd.register("fakepkg.engine", cb)
assert seen == []
import fakepkg.engine
m = sys.modules["fakepkg.engine"]
print(json.dumps({"seen": seen, "first": sys.meta_path[0] is wd,
                  "loader": type(m.__loader__).__name__, "spec_loader": type(m.__spec__.loader).__name__}))
""",
        fakepkg,
    )
    assert out["seen"] == [["fakepkg.engine", True]]
    assert out["first"] is True
    # The module keeps its real loader: pkgutil/inspect/importlib.resources see the usual type.
    assert out["loader"] == "SourceFileLoader"
    assert out["spec_loader"] == "SourceFileLoader"


def test_module_imported_first_is_hooked_at_registration(fakepkg):
    out = run_py(
        PRELUDE
        + """
import fakepkg.engine
wd.install()
wd.register("fakepkg.engine", cb)
n_now = len(seen)
wd.register("fakepkg.engine", cb)  # same callback again: no-op
print(json.dumps({"seen": seen, "n_now": n_now}))
""",
        fakepkg,
    )
    assert out["n_now"] == 1
    assert out["seen"] == [["fakepkg.engine", True]]


def test_lazy_submodule_hooked_when_it_loads(fakepkg):
    out = run_py(
        PRELUDE
        + """
wd.install()
wd.register("fakepkg.lazy.deep", cb)
import fakepkg, fakepkg.lazy
before = list(seen)
from fakepkg.lazy import deep
print(json.dumps({"before": before, "after": seen, "value": deep.VALUE}))
""",
        fakepkg,
    )
    assert out["before"] == []
    assert out["after"] == [["fakepkg.lazy.deep", True]]
    assert out["value"] == 41


def test_reload_runs_callbacks_again(fakepkg):
    out = run_py(
        PRELUDE
        + """
wd.install()
wd.register("fakepkg.engine", cb)
import fakepkg.engine as e
importlib.reload(e)
importlib.reload(e)
print(json.dumps({"seen": seen, "loader": type(e.__loader__).__name__}))
""",
        fakepkg,
    )
    assert out["seen"] == [["fakepkg.engine", True]] * 3
    assert out["loader"] == "SourceFileLoader"


def test_unrelated_imports_are_not_intercepted(fakepkg):
    out = run_py(
        PRELUDE
        + """
wd.install()
wd.register("fakepkg.engine", cb)
import fakepkg.lazy.deep, fakepkg.runner
print(json.dumps({"seen": seen, "watched": wd.watched(),
                  "deep_loader": type(fakepkg.lazy.deep.__spec__.loader).__name__}))
""",
        fakepkg,
    )
    assert out["watched"] == ["fakepkg.engine"]
    # runner imports engine: engine is hooked through that nested import.
    assert out["seen"] == [["fakepkg.engine", True]]
    assert out["deep_loader"] == "SourceFileLoader"


def test_failing_callback_does_not_break_import_and_is_logged_once(fakepkg):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                PRELUDE
                + """
import logging
logging.basicConfig(level=logging.WARNING)
def bad(module):
    raise RuntimeError("boom in hook")
from profilemate.activation import runtime
wd.report_error = runtime._report_watchdog_error  # what the activation layer wires in
wd.install()
wd.register("fakepkg.engine", bad)
import fakepkg.engine as e
importlib.reload(e)
print(json.dumps({"ok": e.Scheduler().schedule(2)}))
"""
            ),
        ],
        env=_env(fakepkg),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"ok": 4}
    # Logged once although the module executed twice (import + reload).
    assert proc.stderr.count("RuntimeError: boom in hook") == 1
    assert proc.stderr.count("import hook 'bad' for module fakepkg.engine failed") == 1
    (line,) = [ln for ln in proc.stderr.splitlines() if "import hook 'bad'" in ln]
    assert line.startswith("[profilemate "), line  # ProfileMate's one prefix


def test_reentrant_lookup_and_imports_inside_callbacks(fakepkg):
    out = run_py(
        PRELUDE
        + """
import importlib.util
class Nosy:
    # A finder below the watchdog that looks the same name up again (re-entrancy).
    calls = 0
    def find_spec(self, name, path=None, target=None):
        if name == "fakepkg.engine":
            Nosy.calls += 1
            if Nosy.calls < 5:
                importlib.util.find_spec("fakepkg.engine")
        return None
sys.meta_path.insert(0, Nosy())
wd.install()
def imports_more(module):
    import fakepkg.lazy.deep  # a watched import from inside a callback
    seen.append(("inner-done", True))
wd.register("fakepkg.engine", imports_more)
wd.register("fakepkg.lazy.deep", cb)
import fakepkg.engine
print(json.dumps({"seen": seen, "nosy": Nosy.calls, "first": sys.meta_path[0] is wd}))
""",
        fakepkg,
    )
    assert out["first"] is True
    assert out["seen"] == [["fakepkg.lazy.deep", True], ["inner-done", True]]
    assert 1 <= out["nosy"] < 10


def test_concurrent_imports_each_hooked_once_without_deadlock(fakepkg):
    out = run_py(
        PRELUDE
        + """
import collections
counts = collections.Counter()
lock = threading.Lock()
def count(module):
    with lock:
        counts[module.__name__] += 1
wd.install()
for i in range(8):
    wd.register(f"fakepkg.m{i}", count)
barrier = threading.Barrier(16)
def worker(k):
    barrier.wait()
    importlib.import_module(f"fakepkg.m{k % 8}")  # two threads per module
threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
for t in threads: t.start()
for t in threads: t.join(30)
print(json.dumps({"counts": dict(counts), "alive": sum(t.is_alive() for t in threads)}))
""",
        fakepkg,
    )
    assert out["alive"] == 0
    assert out["counts"] == {f"fakepkg.m{i}": 1 for i in range(8)}


def test_fork_child_keeps_the_watchdog(fakepkg):
    out = run_py(
        PRELUDE
        + """
import multiprocessing as mp
wd.install()
wd.register("fakepkg.engine", cb)
def child(q):
    import fakepkg.engine
    q.put(seen)
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start(); got = q.get(timeout=30); p.join(30)
print(json.dumps({"child": got, "parent": seen, "code": p.exitcode}))
""",
        fakepkg,
    )
    assert out["code"] == 0
    assert out["child"] == [["fakepkg.engine", True]]
    assert out["parent"] == []


def test_uninstall_and_unregister(fakepkg):
    out = run_py(
        PRELUDE
        + """
wd.install(); wd.install()
n = sum(f is wd for f in sys.meta_path)
wd.register("fakepkg.engine", cb)
wd.unregister("fakepkg.engine", cb)
import fakepkg.engine
wd.uninstall()
print(json.dumps({"n": n, "seen": seen, "installed": wd.installed}))
""",
        fakepkg,
    )
    assert out == {"n": 1, "seen": [], "installed": False}


def test_no_legacy_finder_api():
    from profilemate.hooks import watchdog

    src = inspect.getsource(watchdog)
    assert "def find_module" not in src and "def load_module" not in src
    assert not hasattr(watchdog.ModuleWatchdog, "find_module")
    assert not hasattr(watchdog.ModuleWatchdog, "load_module")


def _namespace_tree(root: Path) -> None:
    # nsroot/ and nsroot/sub/ have no __init__.py: PEP 420 namespace packages, spread over two
    # folders for nsroot (loader None in the spec the path finder returns).
    for base in ("a", "b"):
        (root / base / "nsroot" / "sub").mkdir(parents=True)
    (root / "a" / "nsroot" / "sub" / "leaf.py").write_text("VALUE = 7\n")
    (root / "b" / "nsroot" / "other.py").write_text("VALUE = 8\n")


def test_namespace_package_callbacks_run(tmp_path):
    _namespace_tree(tmp_path)
    out = run_py(
        """
import importlib, json, os, sys
sys.path[:0] = ["a", "b"]  # the test runs in the tree's root
from profilemate.hooks.watchdog import get_watchdog
wd = get_watchdog()
seen = []
def cb(module):
    seen.append([module.__name__, sorted(os.path.relpath(p).split(os.sep)[0] for p in module.__path__)])
wd.install()
wd.register("nsroot", cb)
wd.register("nsroot.sub", cb)
import nsroot.sub.leaf, nsroot.other
ns = sys.modules["nsroot"]
loader = type(ns.__spec__.loader).__name__
importlib.reload(ns)
print(json.dumps({"seen": seen, "loader": loader, "leaf": nsroot.sub.leaf.VALUE,
                  "other": nsroot.other.VALUE, "file": getattr(ns, "__file__", None)}))
""",
        tmp_path,
    )
    assert out["seen"] == [
        ["nsroot", ["a", "b"]],
        ["nsroot.sub", ["a", "b"]],
        ["nsroot", ["a", "b"]],
    ]
    # The module ends up exactly as a plain import leaves it: the stdlib namespace loader.
    assert out["loader"] in ("NamespaceLoader", "_NamespaceLoader")
    assert out["leaf"] == 7 and out["other"] == 8 and out["file"] is None


CLAIMING_FINDER = """
from importlib.machinery import PathFinder
class Claimer:
    # A finder that resolves some names itself (as editable-install and vendoring finders do).
    def __init__(self, prefix):
        self.prefix, self.claimed = prefix, []
    def find_spec(self, name, path=None, target=None):
        if not name.startswith(self.prefix):
            return None
        self.claimed.append(name)
        return PathFinder.find_spec(name, path, target)
"""


def test_finder_inserted_ahead_is_overtaken_at_the_next_lookup(fakepkg):
    out = run_py(
        PRELUDE
        + CLAIMING_FINDER
        + """
wd.install()
wd.register("fakepkg.engine", cb)
claimer = Claimer("fakepkg.engine")
sys.meta_path.insert(0, claimer)   # after the watchdog was installed
import fakepkg.engine               # fakepkg's lookup passes the claimer: the watchdog retakes first place
print(json.dumps({"seen": seen, "first": sys.meta_path[0] is wd, "claimed": claimer.claimed,
                  "n": sum(f is wd for f in sys.meta_path)}))
""",
        fakepkg,
    )
    assert out["seen"] == [["fakepkg.engine", True]]
    assert out["first"] is True and out["n"] == 1
    assert out["claimed"] == ["fakepkg.engine"]  # asked by the watchdog, which wrapped its loader


def test_module_a_finder_ahead_took_is_caught_up_once(fakepkg):
    out = run_py(
        PRELUDE
        + CLAIMING_FINDER
        + """
wd.install()
wd.register("fakepkg.engine", cb)
sys.meta_path.insert(0, Claimer("fakepkg"))   # claims the whole package, watched module included
import fakepkg.engine
before = list(seen)
import colorsys                     # any lookup the claimer passes on reaches the watchdog
after_lookup = list(seen)
wd.register("fakepkg.lazy.deep", cb)
import fakepkg.lazy.deep            # the watchdog is first again: hooked normally
print(json.dumps({"before": before, "after_lookup": after_lookup, "seen": seen,
                  "first": sys.meta_path[0] is wd}))
""",
        fakepkg,
    )
    assert out["before"] == []
    assert out["after_lookup"] == [["fakepkg.engine", True]]
    assert out["seen"] == [["fakepkg.engine", True], ["fakepkg.lazy.deep", True]]
    assert out["first"] is True


def test_register_retakes_first_place_and_catches_up(fakepkg):
    out = run_py(
        PRELUDE
        + CLAIMING_FINDER
        + """
wd.install()
wd.register("fakepkg.engine", cb)
sys.meta_path.insert(0, Claimer(""))   # claims every import: the watchdog is never asked
import fakepkg.engine
before = list(seen)
def cb2(module):
    seen.append(["cb2", module.__name__])
wd.register("fakepkg.engine", cb2)
print(json.dumps({"before": before, "seen": seen, "first": sys.meta_path[0] is wd}))
""",
        fakepkg,
    )
    assert out["before"] == []
    assert out["first"] is True
    # The missed callback runs once, the new one once.
    assert sorted(map(tuple, out["seen"])) == [("cb2", "fakepkg.engine"), ("fakepkg.engine", True)]
