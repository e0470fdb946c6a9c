"""Private by default and bad input: folder modes, foreign and symlinked folders, secrets in
metadata.json, full and read-only disks, a relative PROFILEMATE_DIR, torn files from a killed run.

Runs against the fake ``vllm`` package of test_activation.py (real subprocesses, the real core).
Tests that need a second user (chown) or a mount are root-only and say so when skipped.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_activation import ENGINE_RUN, FAKE_VLLM, last_json, run, sessions

from profilemate import config
from profilemate.activation import session

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
RESULTS = [10, 20, 30, 40, 50]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (chown to another user / mount a tmpfs)"
)


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Path:
    root = tmp_path / "pkgs"
    for rel, body in FAKE_VLLM.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body))
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def warnings(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("[profilemate ")]


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=False)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def all_bytes(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


# --- private by default ----------------------------------------------------------------------


def test_default_output_folder_is_per_user_and_documented(capsys):
    assert config.DEFAULT_DIR == f"/tmp/profilemate-{os.geteuid()}"
    assert config.load({}).dir == config.DEFAULT_DIR
    assert config.DEFAULT_DIR_DOC == "/tmp/profilemate-<uid>"
    # Every document names the same default; none names the old shared /tmp/profilemate.
    for doc in ("README.md", "docs/OUTPUTS.md", "docs/ACTIVATION.md"):
        text = (ROOT / doc).read_text()
        assert config.DEFAULT_DIR_DOC in text, doc
        assert not re.search(r"/tmp/profilemate(?![-\w<])", text), doc
    from profilemate import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert config.DEFAULT_DIR in " ".join(capsys.readouterr().out.split())


def test_created_folders_are_0700_whatever_the_umask(tmp_path):
    base = tmp_path / "a" / "b" / "out"
    with umask(0):
        s = session.join_or_create(config.Config(dir=str(base)))
    for p in (tmp_path / "a", tmp_path / "a" / "b", base, Path(s.dir)):
        assert mode(p) == 0o700, p
    # A child joins the same folder; a session folder removed meanwhile is made again, 0700.
    os.rmdir(s.dir)
    with umask(0):
        j = session.join_or_create(config.Config(session_dir=s.dir, session_start_ns=1))
    assert j.dir == s.dir and not j.created and mode(Path(s.dir)) == 0o700


def test_json_files_are_0600_and_a_planted_link_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    target = tmp_path / "metadata.json"
    target.symlink_to(outside)
    with umask(0):
        session.write_json_atomic(target, {"a": 1})
    assert outside.read_text() == "keep me"
    assert not target.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_metadata_of_a_run_is_0600_in_a_0700_session(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)})
    assert last_json(proc)["results"] == RESULTS
    (sess,) = sessions(out)
    assert mode(out) == 0o700 and mode(sess) == 0o700
    assert mode(sess / "metadata.json") == 0o600


@needs_root
def test_foreign_owned_output_folder_is_refused(fake_vllm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, NOBODY, NOBODY)
    with pytest.raises(OSError, match="belongs to another user"):
        session.join_or_create(config.Config(dir=str(out)))
    proc = run(ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)})
    assert last_json(proc)["results"] == RESULTS  # vLLM runs on
    (line,) = warnings(proc)  # one line for the whole run: children inherit "off"
    assert f"refusing to write profiling output to {out}: it belongs to another user" in line
    assert f"uid {NOBODY}" in line and "set PROFILEMATE_DIR to a folder you own" in line
    assert "vLLM runs normally" in line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_symlinked_output_folder_is_refused(fake_vllm, tmp_path, dangling):
    # E.g. another user planted /tmp/profilemate-<uid> -> somewhere before the first run.
    real = tmp_path / "real"
    if not dangling:
        real.mkdir()
    link = tmp_path / "out"
    link.symlink_to(real)
    proc = run(ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(link)})
    assert last_json(proc)["results"] == RESULTS
    (line,) = warnings(proc)
    assert f"refusing to write profiling output to {link}: it is a symbolic link" in line
    assert "set PROFILEMATE_DIR to the real folder" in line and "vLLM runs normally" in line
    assert not real.exists() if dangling else list(real.iterdir()) == []


def test_symlinked_session_folder_is_refused_when_joining(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "session"
    link.symlink_to(real)
    with pytest.raises(OSError, match="symbolic link"):
        session.join_or_create(config.Config(session_dir=str(link), session_start_ns=1))


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--api-key", "sk-1", "--port", "8000"], ["--api-key", "***", "--port", "8000"]),
        (["--api-key=sk-1"], ["--api-key=***"]),
        (["--hf-token", "hf_x", "--hf_token=hf_y"], ["--hf-token", "***", "--hf_token=***"]),
        (["HF_TOKEN=hf_x", "OPENAI_API_KEY=sk"], ["HF_TOKEN=***", "OPENAI_API_KEY=***"]),
        (["--db-password", "p", "--secret=s", "--apiKey", "k"], ["--db-password", "***"]
         + ["--secret=***", "--apiKey", "***"]),  # fmt: skip
        (["https://user:pass@example.com/x"], ["https://***@example.com/x"]),
        (["--url=s3://AKIA:abc@bucket/k"], ["--url=s3://***@bucket/k"]),
        (["http://h/v1?api_key=abc&n=1"], ["http://h/v1?api_key=***&n=1"]),
        (['{"hf_token": "abc", "n": 1}'], ['{"hf_token": "***", "n": 1}']),
        # Not secrets: longer words, and a flag followed by an option.
        (["--max-num-batched-tokens", "8192", "--tokenizer", "/m", "--ssl-keyfile", "/k.pem"],
         ["--max-num-batched-tokens", "8192", "--tokenizer", "/m", "--ssl-keyfile", "/k.pem"]),
        (["--use-auth-token", "--model", "/m"], ["--use-auth-token", "--model", "/m"]),
        # Prompt text on the command line is not recorded either.
        (["chat", "--system-prompt", "be brief", "-q", "hello there"],
         ["chat", "--system-prompt", "***", "-q", "***"]),
        (["complete", "--quick=tell me"], ["complete", "--quick=***"]),
        (["python", "-q", "script.py"], ["python", "-q", "script.py"]),  # -q = quiet elsewhere
    ],
)  # fmt: skip
def test_command_line_secrets_are_masked(argv, expected):
    from profilemate.activation import redact

    assert redact.redact_argv(argv) == expected


def test_environment_secrets_are_masked():
    from profilemate.activation import redact

    env = {
        "HF_TOKEN": "hf_x",
        "HUGGING_FACE_HUB_TOKEN": "hf_y",
        "OPENAI_API_KEY": "sk",
        "AWS_SECRET_ACCESS_KEY": "a",
        "HTTPS_PROXY": "http://u:p@proxy:3128",
        "PATH": "/bin",
        "VLLM_MAX_NUM_BATCHED_TOKENS": "8192",
    }
    assert redact.redact_env(env) == {
        "HF_TOKEN": "***",
        "HUGGING_FACE_HUB_TOKEN": "***",
        "OPENAI_API_KEY": "***",
        "AWS_SECRET_ACCESS_KEY": "***",
        "HTTPS_PROXY": "http://***@proxy:3128",
        "PATH": "/bin",
        "VLLM_MAX_NUM_BATCHED_TOKENS": "8192",
    }


def test_no_secret_reaches_the_session_folder(fake_vllm, tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            if __name__ == "__main__":
                from vllm import fake_engine
                print(json.dumps({"results": fake_engine.run("spawn", 5)}))
            """
        )
    )
    secrets = ["sk-ARG-1111", "hf_ARG_2222", "pw-URL-3333", "hf_ENV_4444", "sk-ENV-5555"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    env.update(
        PYTHONPATH=str(fake_vllm),
        PROFILEMATE="1",
        PROFILEMATE_DIR=str(out),
        HF_TOKEN=secrets[3],
        OPENAI_API_KEY=secrets[4],
    )
    argv = ["--api-key", secrets[0], f"--hf-token={secrets[1]}", f"https://me:{secrets[2]}@h/x"]
    proc = subprocess.run(
        [sys.executable, str(script), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert last_json(proc)["results"] == RESULTS
    (sess,) = sessions(out)
    blob = all_bytes(sess)
    assert blob and not [s for s in secrets if s.encode() in blob]
    meta = json.loads((sess / "metadata.json").read_text())
    assert meta["argv"][-4:] == ["--api-key", "***", "--hf-token=***", "https://***@h/x"]
    # metadata.json records the command line and ProfileMate's settings, not the environment.
    assert not {"env", "environ", "environment"} & set(meta)


# --- bad input -------------------------------------------------------------------------------


def test_unwritable_output_folder_one_message(fake_vllm, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run(
        ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(blocker / "o")}
    )
    assert last_json(proc)["results"] == RESULTS
    (line,) = warnings(proc)
    assert f"cannot write profiling output to {blocker}" in line
    assert "set PROFILEMATE_DIR to a writable folder" in line and "vLLM runs normally" in line


@needs_root
def test_read_only_file_system_one_message(fake_vllm, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        proc = run(
            ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(ro / "o")}
        )
        assert last_json(proc)["results"] == RESULTS
        (line,) = warnings(proc)
        assert f"cannot write profiling output to {ro / 'o'} (Read-only file system)" in line
        assert "a writable file system" in line and "vLLM runs normally" in line


@needs_root
def test_full_disk_one_message(fake_vllm, tmp_path):
    # A 64 KiB tmpfs, filled up before the run: the session folder fits, metadata.json does not.
    with tmpfs(tmp_path / "full", "size=64k") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as f:
            for _ in range(1024):
                f.write(b"x" * 4096)
                f.flush()
        proc = run(
            ENGINE_RUN % "spawn",
            fake_vllm,
            {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(full / "o")},
        )
        assert last_json(proc)["results"] == RESULTS
        (line,) = warnings(proc)
        assert "No space left on device" in line and str(full / "o") in line
        assert "free some space there or set PROFILEMATE_DIR" in line
        assert "vLLM runs normally" in line
        assert [p.name for p in full.rglob("*.tmp")] == []  # no temporary file left behind


def test_full_disk_in_process_message(tmp_path, monkeypatch):
    # The same without root: writing metadata.json fails with ENOSPC (monkeypatched os.write level).
    from profilemate.activation import runtime

    def no_space(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(session, "write_json_atomic", no_space)
    monkeypatch.setenv("PROFILEMATE", "1")
    rt = runtime.Runtime()
    try:
        state = rt.arm(config.Config(mode="force", dir=str(tmp_path / "o")), "enable")
    finally:
        rt.deactivate()
    assert state == runtime.FAILED
    assert f"cannot write profiling output to {tmp_path / 'o'}" in rt.error
    assert "(No space left on device); free some space there" in rt.error
    assert os.environ["PROFILEMATE"] == "0"  # children of this process stay off


def test_relative_output_folder_with_children_elsewhere(fake_vllm, tmp_path):
    # The first process resolves PROFILEMATE_DIR against its own working directory; its children
    # are started from another one and still write into the same session.
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    code = """
        import json, os, sys
        if __name__ == "__main__":
            import vllm  # activates here, in WORK
            os.chdir(OTHER)
            from vllm import fake_engine
            print(json.dumps({"results": fake_engine.run("spawn", 5),
                              "dir": os.environ["PROFILEMATE_DIR"]}))
    """.replace("OTHER", repr(str(other)))
    proc = run(code, fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": "rel-out"}, cwd=work)
    r = last_json(proc)
    assert r["results"] == RESULTS
    assert list(other.iterdir()) == []  # no second, partial session under the children's cwd
    (sess,) = sessions(work / "rel-out")
    labels = sorted(p.name.rsplit("-", 1)[0] for p in sess.iterdir() if p.is_dir())
    assert labels == ["api", "enginecore", "worker-0"]
    assert json.loads((sess / "metadata.json").read_text())["config"]["dir"] == str(
        work / "rel-out"
    )
    assert r["dir"] == str(work / "rel-out")  # exported absolute to children


def test_torn_and_empty_files_of_a_killed_run(tmp_path):
    from profilemate.demo.__main__ import summarize_session

    sess = tmp_path / "session"
    good, killed = sess / "api-1", sess / "enginecore-2"
    good.mkdir(parents=True)
    killed.mkdir()
    header = "timestamp_sec,step_id,operation,duration_ms,context,num_tokens\n"
    (good / "cpu_operations_timing.csv").write_text(
        header + "0.1,,process_inputs,1.5,x,0\n0.2,,process_inputs,2.5,x,0\n"
    )
    (good / "patch_status.json").write_text(json.dumps({"targets": [{"state": "applied"}]}))
    (killed / "cpu_operations_timing.csv").write_text(header + "0.1,1,schedule,1.0,s,4\n0.2,2,sch")
    (killed / "patch_status.json").write_text("")  # 0 bytes: killed while writing it
    (killed / "other_table.csv").write_bytes(b"")
    (killed / "garbage.csv").write_bytes(b"\x00\xff\xfe\x00torn\x00")
    (sess / "worker-0-3").mkdir()
    (sess / "worker-0-3" / "patch_status.json").write_text('{"targets": [{"state": "app')
    out, err = io.StringIO(), io.StringIO()
    summarize_session(sess, out=out, err=err)
    text, warned = out.getvalue(), err.getvalue().splitlines()
    # The rest is still read.
    assert "process_inputs n=2 median=2.500 ms" in text
    assert "schedule n=1" in text
    assert "probes: {'applied': 1}" in text
    # One warning per bad file, naming it.
    bad = [
        killed / "cpu_operations_timing.csv",
        killed / "patch_status.json",
        killed / "other_table.csv",
        killed / "garbage.csv",
        sess / "worker-0-3" / "patch_status.json",
    ]
    assert len(warned) == len(bad), warned
    for path in bad:
        assert sum(str(path) in w for w in warned) == 1, (path, warned)
    assert all("killed" in w for w in warned)
