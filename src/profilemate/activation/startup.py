"""Start-up activation: imported by ``profilemate_startup.pth`` when PROFILEMATE (or the seed's alias
VLLM_ENABLE_PROFILING) is set, and by the ``profilemate run`` bootstrap ``sitecustomize``.

It only validates the configuration and arms the import watchdog; the session and the core start
when the process turns out to be vLLM (``import vllm``), or at once with ``PROFILEMATE=force``.
Unrelated Python processes that inherit PROFILEMATE=1 therefore cost one finder on sys.meta_path.
Importing this module twice (the .pth and the sitecustomize both fire) arms once.
"""

from __future__ import annotations

import os


def main(activation: str | None = None) -> None:
    from profilemate import _log, config

    try:
        cfg = config.load()
    except config.ConfigError as e:
        _log.notice(f"{e}; profiling is off for this process, vLLM runs normally")
        return
    # Aliases are announced once per run: by the first process, not by every child it starts.
    if cfg.session_dir is None:
        for line in cfg.notices:
            _log.notice(line)
    if cfg.mode == "off":
        return
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
