"""Fork without a profiled child: a process that forks only to exec another program (subprocess's
preexec_fn, os.fork + exec, pty.fork + exec) must not get a folder; the core creates a fork child's
folder on its first event. Each scenario runs in its own interpreter (sys.executable)."""

from __future__ import annotations

import json

import pytest
from test_core_process import spawn, wait_line
from test_core_readers import read_csv

FORK_EXEC = {
    "subprocess_preexec_fn": """
        import subprocess
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=lambda: None, check=True)
        """,
    "os_fork_execv": """
        pid = os.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", "pass"])
        os.waitpid(pid, 0)
        """,
    "pty_fork_exec": """
        import pty
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", "print('hi')"])
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass  # EIO once the child closed the terminal
        os.waitpid(pid, 0)
        """,
}


@pytest.mark.parametrize("how", sorted(FORK_EXEC))
def test_fork_then_exec_leaves_no_folder(tmp_path, how):
    # A child that forks only to exec another program was not asked to be profiled: the core must
    # create nothing for it (its folder is made lazily, on its first event).
    proc = spawn(
        """
        _core.start(OUT, "fx", flush_interval_ms=20)
        t = _core.define_table("fx_rows", [("i", "a0")])
        for i in range(10):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        """
        + FORK_EXEC[how]
        + """
        for i in range(10):
            _core.record_instant(t, 1, _core.now_ns(), a0=i)
        _core.stop()
        print("result", json.dumps({"dirs": sorted(os.listdir(OUT))}), flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert res["dirs"] == [f"fx-{proc.pid}"]
    _, rows = read_csv(tmp_path / "out" / f"fx-{proc.pid}" / "fx_rows.csv")
    assert len(rows) == 20


def test_fork_child_that_never_records_leaves_no_folder_even_after_stop(tmp_path):
    # A child that exits normally (atexit -> stop()) without recording has nothing to write.
    proc = spawn(
        """
        _core.start(OUT, "quiet")
        pid = os.fork()
        if pid == 0:
            ok = _core.enabled() and _core.process_dir().endswith(f"quiet-{os.getpid()}")
            _core.flush()
            st = _core.stats()
            _core.stop()
            os._exit(0 if ok and st["recorded"] == 0 else 3)
        _, status = os.waitpid(pid, 0)
        _core.stop()
        print("result", json.dumps({"status": status, "dirs": sorted(os.listdir(OUT))}),
              flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert res == {"status": 0, "dirs": [f"quiet-{proc.pid}"]}


def test_fork_child_recording_from_several_threads_at_once_gets_one_folder(tmp_path):
    # The first events of a fork child, from several threads at once, start its session once.
    proc = spawn(
        """
        _core.start(OUT, "mt", flush_interval_ms=20)
        t = _core.define_table("mt_rows", [("i", "a0"), ("tid", "tid")])
        pid = os.fork()
        if pid == 0:
            go = threading.Barrier(4)

            def work():
                go.wait()
                for i in range(1000):
                    _core.record_instant(t, 1, _core.now_ns(), a0=i)

            threads = [threading.Thread(target=work) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            _core.flush()
            st = _core.stats()
            _core.stop()
            os._exit(0 if st["recorded"] == 4000 and st["lost"] == 0 else 3)
        _, status = os.waitpid(pid, 0)
        _core.stop()
        print("result", json.dumps({"status": status, "child": pid}), flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert res["status"] == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"mt-{proc.pid}", f"mt-{res['child']}"])
    _, rows = read_csv(out / f"mt-{res['child']}" / "mt_rows.csv")
    assert len(rows) == 4000 and len({r[1] for r in rows}) == 4


def test_relabel_in_a_fork_child_creates_its_folder_under_the_new_label_now(tmp_path):
    # What the runtime does for a multiprocessing child with a role of its own (e.g. a worker
    # forked from the engine): the folder exists at once, under the new label only.
    proc = spawn(
        """
        _core.start(OUT, "engine", flush_interval_ms=20)
        t = _core.define_table("role_rows", [("i", "a0")])
        pid = os.fork()
        if pid == 0:
            try:
                _core.relabel("bad/label")
                ok = False
            except ValueError:
                ok = _core.enabled()  # a bad label changes nothing: still pending
            ok = ok and sorted(os.listdir(OUT)) == [f"engine-{os.getppid()}"]
            d = _core.relabel("worker-0")
            ok = ok and os.path.isdir(d) and d.endswith(f"/worker-0-{os.getpid()}")
            ok = ok and _core.relabel("worker-0") == d  # the same label: nothing to do
            for i in range(50):
                _core.record_instant(t, 1, _core.now_ns(), a0=i)
            _core.stop()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        _core.stop()
        print("result", json.dumps({"status": status, "child": pid}), flush=True)
        """,
        tmp_path,
    )
    res = json.loads(wait_line(proc, "result").split(" ", 1)[1])
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert res["status"] == 0
    out = tmp_path / "out"
    child_dir = f"worker-0-{res['child']}"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"engine-{proc.pid}", child_dir])
    _, rows = read_csv(out / child_dir / "role_rows.csv")
    assert [int(r[0]) for r in rows] == list(range(50))
