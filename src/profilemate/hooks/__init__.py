"""Import hooks (stdlib only): the module watchdog that patches vLLM modules as they load."""

from profilemate.hooks.watchdog import ModuleWatchdog, get_watchdog

__all__ = ["ModuleWatchdog", "get_watchdog"]
