#!/usr/bin/env python3
"""Checks that includes and imports point the way the layers allow (cpp/LAYERS.md).

Inspired by Perfetto's tools/check_include_violations. Python 3 standard library only.
Usage: check_layering.py [ROOT]   (ROOT defaults to the repository this script is in)
Prints one line per violation, "path:line: rule", and exits 1 if there is any.

C++: every `#include "..."` under cpp/ must point at a layer its own layer may use (ALLOWED);
tests/cpp and bench may include anything. Nothing under cpp/ may mention vLLM: the engine knows
nothing of the host application. Python: src/profilemate/hooks/ imports the standard library
only (and profilemate.hooks itself); only the probes, the doctor and the demo import vllm.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

# Layer of a file (by folder under cpp/) and of an include (by its path prefix); first match wins.
FILE_LAYERS = [
    ("cpp/include/profilemate/internal/", "internal"),
    ("cpp/include/profilemate/", "public"),
    ("cpp/core/", "core"),
    ("cpp/sinks/", "sinks"),
    ("cpp/collector/", "collector"),
    ("cpp/report/", "report"),
    ("cpp/pyext/", "pyext"),
    ("cpp/bindings/", "bindings"),
]
INCLUDE_LAYERS = [
    ("profilemate/internal/", "internal"),
    ("profilemate/", "public"),
    ("core/", "core"),
    ("sinks/", "sinks"),
    ("collector/", "collector"),
    ("report/", "report"),
    ("pyext/", "pyext"),
]
# Who may include whom. Arrows point one way: public <- core <- sinks <- collector <- pyext/bindings,
# and public <- core <- report.
# internal/ holds what the public headers' inline code needs (the ring); only the engine uses it.
ALLOWED = {
    "public": {"public", "internal"},
    "internal": {"public", "internal"},
    "core": {"public", "core"},
    "sinks": {"public", "core", "sinks"},
    "collector": {"public", "internal", "core", "sinks", "collector"},
    # The report reads the files a run wrote: formatting and I/O from core, nothing of the engine.
    "report": {"public", "core", "report"},
    "pyext": {"public", "pyext"},
    "bindings": {"public", "pyext"},
}
CPP_SUFFIXES = {".hpp", ".h", ".cpp", ".cc", ".inc"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
VLLM_RE = re.compile(r"vllm", re.IGNORECASE)
# Mentions of vLLM left in files this change may not edit; remove an entry once its file is clean.
VLLM_EXCEPTIONS: dict[str, str] = {}
VLLM_IMPORTERS = ("src/profilemate/probes/", "src/profilemate/doctor.py", "src/profilemate/demo/")
HOOKS = "src/profilemate/hooks/"


def layer_of(path: str, table: list[tuple[str, str]]) -> str | None:
    return next((layer for prefix, layer in table if path.startswith(prefix)), None)


def check_cpp(rel: str, lines: list[str], out: list[str]) -> None:
    """The vLLM rule for every file under cpp/; the include rule for C++ sources and headers."""
    if rel in VLLM_EXCEPTIONS and not any(VLLM_RE.search(line) for line in lines):
        print(f"note: {rel} no longer mentions vLLM: drop it from VLLM_EXCEPTIONS", file=sys.stderr)
    is_cpp = Path(rel).suffix in CPP_SUFFIXES
    src = layer_of(rel, FILE_LAYERS)
    if is_cpp and src is None:
        out.append(f"{rel}:1: file in no layer (add its folder to FILE_LAYERS and ALLOWED)")
    for n, line in enumerate(lines, 1):
        if VLLM_RE.search(line) and rel not in VLLM_EXCEPTIONS:
            out.append(f"{rel}:{n}: cpp/ must not mention vLLM (the core knows nothing of it)")
        m = INCLUDE_RE.match(line) if is_cpp and src else None
        if m is None:
            continue
        dst = layer_of(m.group(1), INCLUDE_LAYERS)
        if dst not in ALLOWED[src]:
            allowed = ", ".join(sorted(ALLOWED[src]))
            out.append(
                f'{rel}:{n}: {src} may not include "{m.group(1)}" ({dst or "no layer"});'
                f" {src} may include: {allowed}"
            )


def imports(tree: ast.AST, package: list[str]):
    """(line, absolute module name) of every import; relative ones resolved against package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield node.lineno, ".".join(base + ([node.module] if node.module else []))


def check_python(rel: str, text: str, out: list[str]) -> None:
    package = rel[len("src/") :].split("/")[:-1]  # e.g. ["profilemate", "hooks"]
    for line, mod in imports(ast.parse(text, rel), package):
        top = mod.split(".")[0]
        if rel.startswith(HOOKS) and top not in sys.stdlib_module_names:
            if mod != "profilemate.hooks" and not mod.startswith("profilemate.hooks."):
                out.append(
                    f"{rel}:{line}: hooks/ may import only the standard library and"
                    f" profilemate.hooks (imports {mod})"
                )
        if top == "vllm" and not rel.startswith(VLLM_IMPORTERS):
            out.append(f"{rel}:{line}: only probes/, doctor.py and demo/ may import vllm")


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    out: list[str] = []
    for path in sorted(p for p in (root / "cpp").rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        check_cpp(path.relative_to(root).as_posix(), text.splitlines(), out)
    for path in sorted((root / "src" / "profilemate").rglob("*.py")):
        check_python(path.relative_to(root).as_posix(), path.read_text(encoding="utf-8"), out)
    for line in out:
        print(line)
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
