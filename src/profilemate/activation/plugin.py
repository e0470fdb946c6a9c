"""vLLM general plugin (entry point ``vllm.general_plugins: profilemate``): a second way in.

vLLM 0.32.0 calls ``load_general_plugins()`` once per process: in the API process (engine args),
first thing in ``EngineCore.__init__`` and in ``WorkerWrapperBase.init_worker`` (which covers Ray
workers) -- always before model load. If the start-up hook already activated this process, this is
a no-op; otherwise it activates when PROFILEMATE asks for it. Without PROFILEMATE it does nothing:
installing the package never profiles anyone by itself.
"""

from __future__ import annotations

import os
import sys


def _role_from_caller() -> str | None:
    """Which vLLM process calls us: Ray workers are all 'MainProcess' to multiprocessing."""
    try:
        frame = sys._getframe(1)
    except ValueError:
        return None
    depth = 0
    while frame is not None and depth < 25:
        code = frame.f_code
        if code.co_name == "init_worker" and "worker_base" in code.co_filename:
            wrapper = frame.f_locals.get("self")
            rank = getattr(wrapper, "global_rank", getattr(wrapper, "rpc_rank", None))
            return f"worker-{rank}" if rank is not None else "worker"
        if code.co_name == "__init__" and code.co_filename.endswith(
            os.path.join("engine", "core.py")
        ):
            return "enginecore"
        frame = frame.f_back
        depth += 1
    return None


def register() -> None:
    try:
        from profilemate import _log, config

        try:
            if config.mode_from_env() == "off":
                return
            cfg = config.load()
        except config.ConfigError as e:
            # Once per process: the start-up hook may have said the same already.
            _log.notice_once(f"{e}; profiling is off for this process, vLLM runs normally")
            return
        from profilemate.activation import runtime

        rt = runtime.get()
        if rt.state in (runtime.ACTIVE, runtime.FAILED):
            return
        state = rt.arm(cfg, "plugin", role_hint=_role_from_caller())
        if state == runtime.ARMED:  # vllm is imported (it is calling us): start now
            rt.activate("vLLM plugin")
    except Exception as e:  # vLLM logs plugin failures loudly; never make it fail
        try:
            from profilemate import _log

            _log.notice(f"plugin activation failed ({type(e).__name__}: {e}); profiling is off")
        except Exception:
            pass
