"""Start-up activation: imported by ``profilemate_startup.pth`` when PROFILEMATE (or the seed's alias
VLLM_ENABLE_PROFILING) is set at all, and by the ``profilemate run`` bootstrap ``sitecustomize``.

Whether the value means "on" is decided here, by :func:`profilemate.config.mode_from_env` (the one
reading every activation path shares): "off" (e.g. PROFILEMATE=0) returns at once, having loaded
only this module and ``profilemate.config``. Otherwise it validates the configuration and arms the
import watchdog; the session and the core start when the process turns out to be vLLM
(``import vllm``), or at once with ``PROFILEMATE=force``. A malformed value prints one line naming
the variable and the allowed values; the process (vLLM) runs on unprofiled.
Unrelated Python processes that inherit PROFILEMATE=1 therefore cost one finder on sys.meta_path.
Importing this module twice (the .pth and the sitecustomize both fire) arms once.
"""

from __future__ import annotations

import os


def main(activation: str | None = None) -> None:
    from profilemate import config

    try:
        if config.mode_from_env() == "off":
            return
        cfg = config.load()
    except config.ConfigError as e:
        from profilemate import _log

        # One line per process (the vLLM plugin reports the same error with the same call).
        _log.notice_once(f"{e}; profiling is off for this process, vLLM runs normally")
        return
    from profilemate import _log

    # Aliases are announced once per run: by the first process, not by every child it starts.
    if cfg.session_dir is None:
        for line in cfg.notices:
            _log.notice(line)
    from profilemate.activation import runtime

    runtime.get().arm(cfg, activation or os.environ.get(config.ENV_ACTIVATION) or "pth")


try:
    main()
except Exception as _e:  # a start-up hook must never stop the interpreter from starting
    try:
        from profilemate import _log

        _log.notice(f"start-up hook failed ({type(_e).__name__}: {_e}); profiling is off")
    except Exception:
        pass
