"""The per-process state machine behind every activation path.

    off --arm()--> armed (watchdog installed, waiting for ``import vllm``) --> active
                     \\--(force / enable() / vLLM already imported)----------^
    active --deactivate()--> off;   any start-up error --> failed (host untouched)

Every path (the .pth start-up hook, the ``profilemate run`` sitecustomize, the vLLM plugin,
``profilemate.enable()``) ends in :meth:`Runtime.arm`; the first one wins, the rest are no-ops.
"""

from __future__ import annotations

# _thread, not threading: threading imports functools/collections, ~7 ms at every interpreter
# start with PROFILEMATE=1, for a lock.
import _thread
import os
from types import ModuleType

from profilemate import _log
from profilemate._log import log
from profilemate.config import Config, export_absolute_dir
from profilemate.hooks.watchdog import get_watchdog

OFF, ARMED, ACTIVE, FAILED = "off", "armed", "active", "failed"
TRIGGER_MODULE = "vllm"


class Runtime:
    def __init__(self) -> None:
        self._lock = _thread.RLock()
        self.state = OFF
        self.config: Config | None = None
        self.activation: str | None = None  # which path armed us: pth, run, plugin, enable
        self.reason: str | None = None  # why this process counts as vLLM
        self.role_hint: str | None = None
        self.label: str | None = None
        self.session = None
        self.process_dir: str | None = None
        self.error: str | None = None
        self.registry = None
        self._core = None
        self._watchdog = get_watchdog()
        self._watchdog.report_error = _report_watchdog_error
        self._fork_hooks = False
        # Called (in order, each guarded) before the last rows are written: probes that keep counts
        # of their own (the MoE device counters) hand them to the core here.
        self._final_flush: list = []

    def add_final_flush(self, fn) -> None:
        """``fn()`` runs once when this process writes its final rows (exit or ``finish()``)."""
        if fn not in self._final_flush:
            self._final_flush.append(fn)

    # --- arming -------------------------------------------------------------------------------
    def arm(self, config: Config, activation: str, *, role_hint: str | None = None) -> str:
        """Install the watchdog; start now if forced or vLLM is already imported. Returns the state."""
        with self._lock:
            if self.state in (ARMED, ACTIVE):
                if role_hint and not self.role_hint:
                    self.role_hint = role_hint
                return self.state
            self.config, self.activation, self.role_hint = config, activation, role_hint
            self.error = None
            export_absolute_dir()  # before any child is started from another working directory
            self._watchdog.install()
            self.state = ARMED
            self._install_fork_hooks()
            if config.mode == "force":
                self.activate("forced")
                if self.state != ACTIVE:
                    return self.state
        # Outside the lock: registering runs the trigger at once when vllm is already imported
        # (armed: activate now; forced: tell the registry which vLLM this is).
        self._watchdog.register(TRIGGER_MODULE, self._on_vllm_imported)
        return self.state

    def _on_vllm_imported(self, module: ModuleType) -> None:
        with self._lock:
            if self.state == ACTIVE and self.registry is not None:
                # Forced start before vLLM was imported: now its version is known.
                from profilemate.activation.session import vllm_version

                self.registry.set_vllm_version(vllm_version())
                return
            if self.state != ARMED:
                return
        from profilemate.activation.detect import argv_says_vllm

        self.activate(argv_says_vllm() or "imports vllm")

    # --- activation ---------------------------------------------------------------------------
    def activate(self, reason: str) -> str | None:
        """Start the session, the core and the registry. Never raises; returns the process dir."""
        with self._lock:
            if self.state == ACTIVE:
                return self.process_dir
            if self.config is None:
                return None
            try:
                return self._activate(reason)
            except OSError as e:
                if not self.config.session_dir:
                    # This process would have created the session: its children (EngineCore,
                    # workers) inherit "off" instead of each repeating the same warning.
                    os.environ["PROFILEMATE"] = "0"
                self._fail(
                    f"{output_error(e, self.config.dir)} Profiling is off for this process; vLLM "
                    f"runs normally."
                )
            except Exception as e:
                self._fail(
                    f"could not start ({type(e).__name__}: {e}); profiling is off for this process, "
                    f"vLLM runs normally"
                )
                log.debug("start-up failure", exc_info=True)
            return None

    def _activate(self, reason: str) -> str:
        from profilemate import _core
        from profilemate.activation import detect, session
        from profilemate.probes import targets_for
        from profilemate.probes.recorder import CoreRecorder
        from profilemate.probes.registry import Registry

        cfg = self.config
        _log.configure(cfg.log)
        from profilemate.probes import registry

        registry.set_fault_injection(cfg.fault_inject)
        missing = [
            f
            for f in ("start", "stop", "relabel", "timed", "define_table")
            if not hasattr(_core, f)
        ]
        if missing:
            raise RuntimeError(
                f"profilemate._core lacks {', '.join(missing)} (rebuild the package)"
            )
        sess = session.join_or_create(cfg)
        label = detect.process_role(hint=self.role_hint)
        if sess.created:
            session.write_metadata(
                sess, cfg, activation=self.activation, reason=reason, label=label
            )
            session.export(sess)
        process_dir = _core.start(
            sess.dir,
            label,
            ring_capacity=cfg.ring_capacity,
            flush_interval_ms=cfg.flush_interval_ms,
            trace=cfg.trace,
            session_start_ns=sess.start_ns,
        )
        self._core = _core
        self.session, self.label, self.process_dir, self.reason = sess, label, process_dir, reason
        self.state = ACTIVE
        self.registry = Registry(
            targets_for(cfg.probes),
            CoreRecorder(_core),
            watchdog=self._watchdog,
            vllm_version=session.vllm_version(),
            on_change=self.write_patch_status,
        )
        self._watchdog.install()
        self.registry.activate()
        self._register_exit()
        self._install_mp_fork_hook()
        log.info("%s: profiling into %s", label, process_dir)
        log.debug(
            "activation=%s reason=%s session=%s created=%s",
            self.activation,
            reason,
            sess.dir,
            sess.created,
        )
        return process_dir

    def _fail(self, message: str) -> None:
        self.error = message
        _log.notice(message)
        self._teardown()
        self.state = FAILED

    def _teardown(self) -> None:
        if self.registry is not None:
            self.registry.deactivate()
            self.registry = None
        self._watchdog.unregister(TRIGGER_MODULE, self._on_vllm_imported)
        if self._core is not None:
            try:
                self._core.stop()
            except Exception:
                log.debug("core stop failed", exc_info=True)
            self._core = None

    def deactivate(self) -> None:
        """Unpatch everything, flush and stop the core. Idempotent."""
        with self._lock:
            if self.state == OFF:
                return
            self._teardown()
            self.state = OFF
            self.process_dir = None

    # --- status -------------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            return {
                "state": self.state,
                "activation": self.activation,
                "reason": self.reason,
                "label": self.label,
                "pid": os.getpid(),
                "session_dir": self.session.dir if self.session else None,
                "process_dir": self.process_dir,
                "vllm_version": self.registry.vllm_version if self.registry else None,
                "error": self.error,
                "targets": self.registry.status() if self.registry else [],
            }

    def write_patch_status(self) -> None:
        # A forked child's folder exists only once it recorded (or was relabelled): a child that
        # forks to exec another program must not get one.
        if self.process_dir is None or not os.path.isdir(self.process_dir):
            return
        from profilemate.activation.session import write_json_atomic

        try:
            write_json_atomic(os.path.join(self.process_dir, "patch_status.json"), self.status())
        except OSError as e:
            # Once per process: a full disk would otherwise repeat it at every change.
            if not getattr(self, "_status_write_failed", False):
                self._status_write_failed = True
                log.warning(
                    "%s (patch_status.json is not updated any more in this process; vLLM runs "
                    "normally)",
                    output_error(e, self.process_dir).rstrip("."),
                )

    def flush(self) -> None:
        with self._lock:
            if self.state == ACTIVE and self._core is not None:
                self.write_patch_status()
                self._core.flush()

    # --- exit ---------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write the last rows, patch_status.json and the final summary.json now. Idempotent.

        For a process vLLM is about to end (probes/categories/lifecycle.py): what the exit hooks
        would do, done before vLLM's teardown, which may be cut short by a SIGKILL; the exit hooks
        then have nothing left to do. Probes stay in place and forward without recording.
        """
        self._at_exit()

    def _register_exit(self) -> None:
        """Write the last rows at exit. Idempotent per process.

        ``atexit`` covers the main process and spawned children (``spawn_main`` ends in
        ``sys.exit``); multiprocessing *fork* children leave through ``os._exit`` and only run
        multiprocessing's own finalizers, hence the ``Finalize`` (its registry is cleared in every
        new child, so this is called again after a fork). Low priority: after children are joined.
        """
        pid = os.getpid()
        if getattr(self, "_exit_pid", None) == pid:
            return
        self._exit_pid = pid
        import atexit

        atexit.register(self._at_exit)
        try:
            from multiprocessing import util

            util.Finalize(None, self._at_exit, exitpriority=-100)
        except Exception:
            log.debug("multiprocessing finalizer not installed", exc_info=True)

    def _at_exit(self) -> None:
        if self.state != ACTIVE or getattr(self, "_exited_pid", None) == os.getpid():
            return
        self._exited_pid = os.getpid()
        for fn in list(self._final_flush):
            try:
                fn()
            except Exception:
                log.warning("a final flush failed (its last counts are lost)", exc_info=True)
        try:
            self.write_patch_status()
            if self._core is not None:
                self._core.stop()
        except Exception:
            log.debug("stop at exit failed", exc_info=True)

    # --- fork ---------------------------------------------------------------------------------
    def _install_fork_hooks(self) -> None:
        if self._fork_hooks or not hasattr(os, "register_at_fork"):
            return
        self._fork_hooks = True
        os.register_at_fork(after_in_child=self._after_fork_child)

    def _install_mp_fork_hook(self) -> None:
        # At activation, not at arming: importing multiprocessing costs ~10 ms, and an armed process
        # that forks children before it activates needs nothing (each child activates itself).
        # The registry of after-fork hooks is inherited by fork children, so once is enough.
        if getattr(self, "_mp_hook", False):
            return
        self._mp_hook = True
        try:
            from multiprocessing import util

            util.register_after_fork(self, Runtime._after_mp_fork)
        except Exception:
            log.debug("multiprocessing after-fork hook not installed", exc_info=True)

    def _after_fork_child(self) -> None:
        # Runs in every fork child, also those that only exec another program (subprocess's
        # preexec_fn, pty.fork): create nothing here. The core's fork handler only reset its state;
        # the child's <label>-<childpid>/ and collector are made on its first event, and
        # _core.process_dir() already names that folder. (multiprocessing children are relabelled
        # in _after_mp_fork.)
        # Another thread may have held the lock at fork time; the child has only this thread.
        self._lock = _thread.RLock()
        if self.registry is not None:
            self.registry.reset_lock_after_fork()
        if self.state == ACTIVE and self._core is not None:
            try:
                self.process_dir = self._core.process_dir() or self.process_dir
            except Exception:
                log.debug("process_dir after fork", exc_info=True)

    def _after_mp_fork(self) -> None:
        """A multiprocessing child started with fork: now its process name (role) is known.

        multiprocessing runs these after it set ``current_process()`` (BaseProcess._bootstrap), which
        the plain fork hook cannot see. A child with a new role (e.g. ``VllmWorker-1`` forked from the
        EngineCore) gets its own folder under its own label now (``_core.relabel``); one with its
        parent's role gets ``<label>-<childpid>/`` on its first event, like any fork child.
        """
        if self.state != ACTIVE or self._core is None or self.session is None:
            return
        try:
            from profilemate.activation import detect

            label = detect.process_role()
            if label != self.label:
                self.process_dir = self._core.relabel(label)
                self.label = label
            self._register_exit()
            self.write_patch_status()
            log.info("%s: profiling into %s", self.label, self.process_dir)
        except Exception as e:
            self._fail(f"could not start in a forked child ({type(e).__name__}: {e})")


def output_error(e: OSError, default_path: str) -> str:
    """One sentence naming the path and what to do, for an OSError met writing profiling output."""
    from profilemate.activation.session import UnsafeOutputDir

    if isinstance(e, UnsafeOutputDir):
        return f"{e}."
    import errno

    path = e.filename or default_path
    what = {
        errno.ENOSPC: "free some space there or set PROFILEMATE_DIR to a folder on another disk",
        errno.EDQUOT: "free some space there or set PROFILEMATE_DIR to a folder on another disk",
        errno.EROFS: "set PROFILEMATE_DIR to a folder on a writable file system",
    }.get(e.errno, "set PROFILEMATE_DIR to a writable folder")
    detail = str(e.strerror or e).removeprefix("profilemate: ")
    if str(path) in detail:  # the core's messages name the path already
        return f"{detail}; {what}."
    return f"cannot write profiling output to {path} ({detail}); {what}."


def _report_watchdog_error(message: str) -> None:
    # configure(None) gives the line the "[profilemate <pid>] " prefix even before activation
    # configured the logger.
    _log.configure(None)
    log.warning(message, exc_info=True)


_runtime: Runtime | None = None
_runtime_lock = _thread.allocate_lock()


def get() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime
