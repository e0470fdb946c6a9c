"""Bootstrap for ``profilemate run``: first on PYTHONPATH, so every Python child process loads it.

It arms ProfileMate (a no-op if the .pth start-up hook already did) and then runs the user's own
``sitecustomize`` -- the next one on sys.path -- so that keeps working under the launcher.
"""

import os
import sys


def _arm() -> None:
    try:
        import profilemate.activation.startup  # noqa: F401  (arms on import)
    except Exception as e:  # e.g. the command runs an interpreter without profilemate installed
        if os.environ.get("PROFILEMATE_LOG", "").strip().lower() == "debug":
            # profilemate._log's prefix, spelled out: profilemate may be what failed to import.
            sys.stderr.write(f"[profilemate {os.getpid()}] bootstrap could not arm: {e}\n")


def _chain_user_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        # What site.py itself does for a failing sitecustomize: report and carry on.
        sys.stderr.write(
            f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(e).__name__}: {e}\n"
        )


_arm()
_chain_user_sitecustomize()
