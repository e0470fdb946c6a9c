"""ProfileMate: a runtime profiler for vLLM.

The package is a thin Python layer over a C++20 core (``profilemate._core``).
"""

from profilemate._version import __version__

__all__ = ["__version__"]
