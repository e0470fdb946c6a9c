"""Process-level behaviour of the core, each scenario in its own interpreter (sys.executable):
SIGKILL mid-stream, fork, SIGTERM, SIGINT, a write error at run time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from test_core_readers import read_csv, read_trace

PRELUDE = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from profilemate import _core
    OUT = sys.argv[1]
    """
)


def spawn(script: str, out_dir: Path, **kw) -> subprocess.Popen:
    path = out_dir / "child.py"
    path.write_text(PRELUDE + textwrap.dedent(script))
    return subprocess.Popen(
        [sys.executable, str(path), str(out_dir / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_line(proc: subprocess.Popen, want: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(want):
            return line.strip()
    proc.kill()
    raise AssertionError(f"child never printed {want!r}; stderr: {proc.stderr.read()}")


def only_process_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_sigkill_leaves_parseable_files_with_all_rows_older_than_1s(tmp_path):
    # The child records a numbered stream and reports (seq, time) every 50 ms. After SIGKILL every
    # file must parse (torn last record at most) and every seq reported >= 1 s before the kill
    # must be on disk: the collector's 100 ms cycle plus write(2) is the whole durability story.
    proc = spawn(
        """
        _core.start(OUT, "crash", ring_capacity=1 << 20, flush_interval_ms=100)
        t = _core.define_table("crash_rows", [("seq", "a0"), ("ts", "ts_sec"), ("note", "ctx")])
        name, note = _core.intern("tick"), _core.intern('quoted "note", with comma')
        seq, last = 0, 0.0
        while True:
            for _ in range(200):
                _core.record_span(t, name, _core.now_ns(), 1000, seq, note, a0=seq)
                seq += 1
            now = time.monotonic()
            if now - last > 0.05:
                print(f"seq {seq - 1} {now}", flush=True)
                last = now
            time.sleep(0.001)
        """,
        tmp_path,
    )
    reports = []

    def reader():
        for line in proc.stdout:
            if line.startswith("seq "):
                _, s, t = line.split()
                reports.append((int(s), float(t)))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while (not reports or reports[-1][1] - reports[0][1] < 2.5) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reports, proc.stderr.read()
    kill_time = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    th.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    old = [s for s, t in reports if t <= kill_time - 1.0]
    assert old, reports
    must_have = old[-1]

    pdir = only_process_dir(tmp_path / "out")
    header, rows = read_csv(pdir / "crash_rows.csv")
    assert header == ["seq", "ts", "note"]
    seqs = [int(r[0]) for r in rows]
    assert seqs == list(range(len(seqs)))  # in order, nothing missing, nothing duplicated
    assert len(seqs) > must_have, (len(seqs), must_have)
    assert all(r[2] == 'quoted "note", with comma' for r in rows)
    events = read_trace(pdir / "trace.json")  # unterminated array: each complete line parses
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) > must_have


def test_fork_child_gets_own_dir_and_parent_is_unaffected(tmp_path):
    proc = spawn(
        """
        _core.start(OUT, "fk", flush_interval_ms=20)
        t = _core.define_table("fork_rows", [("who", "ctx"), ("pid", "pid"), ("i", "a0")])
        parent, child = _core.intern("parent"), _core.intern("child")
        stop = threading.Event()

        def busy():  # keep a second thread recording across the fork
            i = 0
            while not stop.is_set():
                _core.record_instant(t, 1, _core.now_ns(), ctx=parent, a0=i)
                i += 1
                time.sleep(0.0005)

        bg = threading.Thread(target=busy)
        bg.start()
        for i in range(100):
            _core.record_instant(t, 1, _core.now_ns(), ctx=parent, a0=i)
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:
            ok = _core.enabled() and _core.process_dir().endswith(f"fk-{os.getpid()}")
            for i in range(500):
                _core.record_instant(t, 1, _core.now_ns(), ctx=child, a0=i)
            _core.flush()
            st = _core.stats()
            _core.stop()
            os._exit(0 if ok and st["recorded"] == 500 and st["dropped"] == 0 else 3)
        for i in range(100):
            _core.record_instant(t, 1, _core.now_ns(), ctx=parent, a0=i)
        _, status = os.waitpid(pid, 0)
        stop.set()
        bg.join()
        _core.flush()
        print("result", json.dumps({"child": pid, "status": status,
                                    "parent_dir": _core.process_dir(),
                                    "enabled": _core.enabled()}), flush=True)
        _core.stop()
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert res["status"] == 0 and res["enabled"]
    out = tmp_path / "out"
    parent_dir = Path(res["parent_dir"])
    child_dir = out / f"fk-{res['child']}"
    assert parent_dir.name == f"fk-{proc.pid}"
    assert sorted(p.name for p in out.iterdir()) == sorted([parent_dir.name, child_dir.name])
    _, prow = read_csv(parent_dir / "fork_rows.csv")
    _, crow = read_csv(child_dir / "fork_rows.csv")
    assert {r[0] for r in prow} == {"parent"} and {r[1] for r in prow} == {str(proc.pid)}
    assert len(prow) >= 200
    assert [r[0] for r in crow] == ["child"] * 500  # none of the parent's buffered rows
    assert {r[1] for r in crow} == {str(res["child"])}
    csum = json.loads((child_dir / "summary.json").read_text())
    assert csum["pid"] == res["child"] and csum["recorded"] == 500
    assert all(e["pid"] == res["child"] for e in read_trace(child_dir / "trace.json"))
    assert json.loads((parent_dir / "trace.json").read_text())  # parent closed its trace normally


def test_sigterm_flushes_and_still_dies_by_sigterm(tmp_path):
    # flush_interval_ms=1000: without the signal-time flush the rows would still be in memory.
    proc = spawn(
        """
        _core.start(OUT, "term", flush_interval_ms=1000)
        t = _core.define_table("term_rows", [("i", "a0")])
        for i in range(1234):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        print("ready", flush=True)
        time.sleep(30)
        print("not killed", flush=True)
        """,
        tmp_path,
    )
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    pdir = only_process_dir(tmp_path / "out")
    _, rows = read_csv(pdir / "term_rows.csv")
    assert [int(r[0]) for r in rows] == list(range(1234))
    summary = json.loads((pdir / "summary.json").read_text())  # written at signal time
    assert summary["final"] is False and summary["recorded"] == 1234


def test_sigint_flushes_and_python_still_gets_keyboardinterrupt(tmp_path):
    proc = spawn(
        """
        pdir = _core.start(OUT, "int", flush_interval_ms=1000)
        t = _core.define_table("int_rows", [("i", "a0")])
        for i in range(777):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        try:
            print("ready", flush=True)
            time.sleep(30)
            print("no interrupt", flush=True)
        except KeyboardInterrupt:
            # Read the file before stop(): the rows must already be there (signal-time flush).
            with open(os.path.join(pdir, "int_rows.csv")) as f:
                n = sum(1 for _ in f) - 1
            print("keyboardinterrupt", n, flush=True)
        _core.stop()
        """,
        tmp_path,
    )
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    line = wait_line(proc, "keyboardinterrupt")
    assert line == "keyboardinterrupt 777"
    assert proc.wait(timeout=10) == 0


def test_sigterm_chains_to_a_previous_python_handler(tmp_path):
    proc = spawn(
        """
        def on_term(signum, frame):
            print("python handler ran", flush=True)
            _core.stop()
            sys.exit(7)
        signal.signal(signal.SIGTERM, on_term)  # installed before start: we must chain to it
        _core.start(OUT, "chain", flush_interval_ms=1000)
        t = _core.define_table("chain_rows", [("i", "a0")])
        for i in range(50):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        print("ready", flush=True)
        time.sleep(30)
        """,
        tmp_path,
    )
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    wait_line(proc, "python handler ran")
    assert proc.wait(timeout=10) == 7
    _, rows = read_csv(only_process_dir(tmp_path / "out") / "chain_rows.csv")
    assert len(rows) == 50


def test_exit_without_stop_flushes_from_atexit(tmp_path):
    proc = spawn(
        """
        _core.start(OUT, "ax", flush_interval_ms=1000)
        t = _core.define_table("atexit_rows", [("i", "a0")])
        for i in range(321):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        # no stop(): the C++ atexit hook must drain and write summary.json
        """,
        tmp_path,
    )
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    pdir = only_process_dir(tmp_path / "out")
    assert len(read_csv(pdir / "atexit_rows.csv")[1]) == 321
    assert json.loads((pdir / "summary.json").read_text())["final"] is True
    json.loads((pdir / "trace.json").read_text())


def test_write_error_at_runtime_warns_once_and_turns_recording_off(tmp_path):
    # RLIMIT_FSIZE makes write(2) fail with EFBIG past 64 KiB (SIGXFSZ ignored), like a full disk.
    proc = spawn(
        """
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _core.start(OUT, "full", flush_interval_ms=10)
        t = _core.define_table("big_rows", [("i", "a0"), ("pad", "ctx")])
        pad = _core.intern("x" * 200)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        for i in range(5000):
            _core.record_instant(t, 1, _core.now_ns(), ctx=pad, a0=i)
        _core.flush()
        st1 = _core.stats()
        on_after = _core.enabled()
        for i in range(5000):  # a no-op now
            _core.record_instant(t, 1, _core.now_ns(), ctx=pad, a0=i)
        f = _core.timed(lambda: 42, t, 1)
        value = f()
        _core.flush()
        st2 = _core.stats()
        _core.stop()
        print("result", json.dumps({"st1": st1, "st2": st2, "on": on_after, "value": value}),
              flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=20) == 0
    err = proc.stderr.read()
    # The core's line: the Python logger's prefix, what failed and the path (no setting names).
    prefix = f"[profilemate {proc.pid}] cannot write "
    warnings = [ln for ln in err.splitlines() if ln.startswith(prefix)]
    assert len(warnings) == 1, err
    assert str(tmp_path / "out") in warnings[0] and "recording is off" in warnings[0]
    assert "PROFILEMATE_" not in warnings[0]
    assert res["st1"]["write_errors"] == 1 and res["st2"]["write_errors"] == 1
    assert res["on"] is False and res["value"] == 42
    assert res["st2"]["recorded"] == res["st1"]["recorded"]  # nothing recorded after the error


def test_ignored_sigint_stays_ignored_in_an_exec_child(tmp_path):
    # SIG_IGN survives exec; a handler does not (exec resets it to SIG_DFL). So the core must not
    # install its handler over an ignored signal, or every exec'd grandchild stops ignoring it.
    proc = spawn(
        """
        import subprocess
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _core.start(OUT, "ign")
        code = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        os.kill(os.getpid(), signal.SIGINT)  # still ignored here: nothing happens
        _core.stop()
        print("result", json.dumps({"grandchild_ignores": child.stdout.strip(),
                                    "err": child.stderr}), flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert res["grandchild_ignores"] == "True", res
