"""A tiny version parser for vLLM version ranges (no dependency on ``packaging``).

Accepts what vLLM wheels report: ``0.32.0``, ``0.11.0rc1``, ``0.10.2.dev45+g1234abc``, ``0.9.1+cpu``,
``0.12.post1``. The local part (``+cpu``) is ignored. Anything else (``dev``, ``unknown``, empty)
parses to ``None``: the registry then applies the targets that exist and skips the rest.
"""

from __future__ import annotations

import re

_RE = re.compile(
    r"""^\s*v?(?P<release>\d+(?:\.\d+)*)
        (?:[-_.]?(?P<pre>a|alpha|b|beta|rc|c)[-_.]?(?P<pre_n>\d*))?
        (?:[-_.]?(?:post|rev|r)[-_.]?(?P<post>\d*))?
        (?:[-_.]?dev[-_.]?(?P<dev>\d*))?
        (?:\+[0-9a-z.]+)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "rc": 2, "c": 2}

Version = tuple  # (6 release numbers) + (stage, stage number, post, dev)


def parse(text: str | None) -> Version | None:
    """A comparable tuple, or None when ``text`` is not a version."""
    if not text:
        return None
    m = _RE.match(str(text))
    if m is None:
        return None
    release = [int(p) for p in m.group("release").split(".")]
    release = (release + [0] * 6)[:6]  # fixed width so tuples compare field by field
    # Stage orders dev < a < b < rc < final; a dev release of a final sorts before its pre-releases.
    if m.group("pre"):
        stage, stage_n = _PRE_RANK[m.group("pre").lower()], int(m.group("pre_n") or 0)
    elif m.group("dev") is not None and m.group("post") is None:
        stage, stage_n = -1, 0
    else:
        stage, stage_n = 3, 0
    post = int(m.group("post") or 0) if m.group("post") is not None else -1
    dev = int(m.group("dev") or 0) if m.group("dev") is not None else 1 << 62
    return (*release, stage, stage_n, post, dev)


def in_range(version: Version, minimum: str | None, below: str | None) -> bool:
    """``minimum <= version < below``; either bound may be None (open)."""
    lo = parse(minimum) if minimum else None
    hi = parse(below) if below else None
    if minimum and lo is None or below and hi is None:
        raise ValueError(f"bad version bound: {minimum!r} / {below!r}")
    if lo is not None and version < lo:
        return False
    return not (hi is not None and version >= hi)


def describe_range(minimum: str | None, below: str | None) -> str:
    if minimum and below:
        return f">={minimum},<{below}"
    if minimum:
        return f">={minimum}"
    if below:
        return f"<{below}"
    return "any"
