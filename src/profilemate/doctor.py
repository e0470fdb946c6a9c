"""``profilemate doctor``: versions, every target (present? signature?), activation paths, output folder.

Imports vLLM to inspect it, with profiling switched off in the doctor's own process.
"""

from __future__ import annotations

import os
import platform
import site
import sys
import tempfile
from pathlib import Path

from profilemate import _version, config

# The core's Python API, generated from cpp/bindings/module.cpp by nanobind's stub generator and
# committed (the build checks the two agree; scripts/update-core-stub.sh refreshes it). It is
# installed next to the extension, so the doctor checks the built core against it.
CORE_STUB = Path(__file__).resolve().with_name("_core.pyi")


def core_contract(stub: Path | str | None = None) -> tuple[str, ...]:
    """The public names ``profilemate._core`` must have: the stub's top-level functions, classes
    and constants, in stub order."""
    import ast

    names: list[str] = []
    for node in ast.parse(Path(stub or CORE_STUB).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return tuple(dict.fromkeys(n for n in names if not n.startswith("_")))


def check_core(contract: tuple[str, ...] | None = None) -> tuple[dict, list[str]]:
    """The core's version and the contract names it lacks, and the problem lines for the report."""
    problems: list[str] = []
    if contract is None:
        try:
            contract = core_contract()
        except (OSError, SyntaxError) as e:
            contract = ()
            problems.append(
                f"cannot read the core's API stub {CORE_STUB} ({e}; reinstall the package)"
            )
    try:
        from profilemate import _core

        core = {
            "version": _core.version(),
            "missing": [f for f in contract if not hasattr(_core, f)],
        }
    except Exception as e:
        core = {"version": None, "missing": list(contract), "error": str(e)}
    if core["missing"]:
        problems.append(f"profilemate._core lacks {', '.join(core['missing'])}")
    return core, problems


def _pth_installed() -> str | None:
    dirs = list(getattr(site, "getsitepackages", list)()) + [site.getusersitepackages()]
    for d in dirs:
        p = Path(d) / "profilemate_startup.pth"
        if p.is_file():
            return str(p)
    return None


def _plugin_entry_point() -> str | None:
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="vllm.general_plugins"):
            if ep.name == "profilemate":
                return ep.value
    except Exception:
        pass
    return None


def _writable(path: str) -> tuple[bool, str]:
    """Whether the folder (or, if missing, the nearest existing parent that would hold it) is writable,
    and not one that profiling would refuse (a symbolic link, another user's: activation/session.py)."""
    from profilemate.activation.session import UnsafeOutputDir, check_private_dir

    p = Path(path)
    if os.path.lexists(p):
        try:
            check_private_dir(str(p))
        except UnsafeOutputDir as e:
            return False, str(e)
        except OSError:
            pass  # not a folder: reported below
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{probe} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".profilemate-doctor-"):
            pass
    except OSError as e:
        return False, f"{probe}: {e.strerror or e}"
    return True, "exists" if p.exists() else f"will be created (in {probe})"


def _versions() -> dict:
    out = {"python": platform.python_version(), "profilemate": _version.__version__}
    try:
        import vllm

        out["vllm"] = getattr(vllm, "__version__", None)
    except Exception as e:
        out["vllm"] = None
        out["vllm_error"] = f"{type(e).__name__}: {e}"
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811
        except Exception:
            torch = None
    out["torch"] = getattr(torch, "__version__", None)
    return out


def collect() -> dict:
    from profilemate.activation import runtime

    runtime.get().deactivate()  # the doctor inspects vLLM; it is not a profiled process
    problems: list[str] = []

    try:
        cfg = config.load()
        cfg_error = None
    except config.ConfigError as e:
        cfg, cfg_error = None, str(e)
        problems.append(cfg_error)

    versions = _versions()
    if versions.get("vllm") is None:
        problems.append("vLLM is not importable in this interpreter")

    core, core_problems = check_core()
    problems += core_problems

    pth = _pth_installed()
    plugin = _plugin_entry_point()
    boot = str(Path(__file__).resolve().parent / "activation" / "bootstrap")
    on_path = boot in os.environ.get("PYTHONPATH", "").split(os.pathsep)
    mode = cfg.mode if cfg else "off"  # config.load() reads it with config.mode_from_env()
    mode_var, raw = config.mode_variable()
    allowed_plugins = os.environ.get("VLLM_PLUGINS")
    plugin_allowed = allowed_plugins is None or "profilemate" in allowed_plugins.split(",")
    paths = []
    if on_path:
        paths.append("profilemate run (bootstrap sitecustomize on PYTHONPATH)")
    if pth and mode != "off":
        paths.append(f"start-up hook {pth} ({mode_var}={raw})")
    if plugin and plugin_allowed and mode != "off":
        paths.append("vLLM plugin vllm.general_plugins:profilemate")
    activation = {
        "PROFILEMATE": raw,
        "mode_variable": mode_var,
        "mode": mode,
        "pth": pth,
        "bootstrap_on_pythonpath": on_path,
        "plugin_entry_point": plugin,
        "plugin_allowed_by_VLLM_PLUGINS": plugin_allowed,
        "would_fire": paths,
        "note": {
            "off": "profiling is off: set PROFILEMATE=1 or use `profilemate run -- <command>`",
            "auto": "processes that import vllm are profiled",
            "force": "every Python process is profiled",
        }[mode],
    }
    if pth is None:
        problems.append(
            "profilemate_startup.pth not found in site-packages (reinstall the package)"
        )

    out_dir = cfg.dir if cfg else config.DEFAULT_DIR
    ok, detail = _writable(out_dir)
    output = {"dir": out_dir, "writable": ok, "detail": detail}
    if not ok:
        problems.append(
            detail
            if detail.startswith("refusing")
            else f"output folder not writable: {detail} (set PROFILEMATE_DIR)"
        )

    from profilemate.probes import all_targets
    from profilemate.probes import versions as vv
    from profilemate.probes.registry import inspect_site

    parsed = vv.parse(versions.get("vllm"))
    targets = []
    for t in all_targets():
        for where in t.sites:
            row = {
                "target": where.key,
                "category": t.category,
                "roles": list(t.roles),
                "hooks": bool(t.hooks),
                "vllm_range": where.vllm_range,
                "group": t.key,
            }
            row["in_range"] = (
                None if parsed is None else vv.in_range(parsed, where.vllm_min, where.vllm_below)
            )
            if versions.get("vllm") is not None:
                row.update(inspect_site(t, where))
            targets.append(row)
    groups: dict[str, bool] = {}
    for row in targets:
        key = row["group"]
        groups[key] = groups.get(key, False) or bool(
            row.get("present") and row.get("signature_ok") is not False
        )
    for key, found in groups.items():
        if not found and versions.get("vllm") is not None:
            problems.append(f"no target of {key} exists in vLLM {versions['vllm']}")

    moe = _moe_info() if versions.get("vllm") is not None else None

    return {
        "ok": not problems,
        "problems": problems,
        "versions": versions,
        "core": core,
        "config": cfg.public() if cfg else {"error": cfg_error},
        "activation": activation,
        "output": output,
        "targets": targets,
        "moe": moe,
    }


def _moe_info() -> dict:
    """Which path counts MoE expert load in this vLLM (probes/categories/moe.py)."""
    try:
        from profilemate.probes import load_category

        return load_category("moe").doctor_info()
    except Exception as e:
        return {"path": "unknown", "why": f"{type(e).__name__}: {e}"}


def render(r: dict) -> str:
    v = r["versions"]
    lines = [
        "ProfileMate doctor",
        f"  python {v['python']}   vllm {v.get('vllm') or 'NOT IMPORTABLE'}   torch {v.get('torch') or '-'}"
        f"   profilemate {v['profilemate']}   core {r['core'].get('version') or '-'}",
        "",
        "Activation",
        f"  {r['activation'].get('mode_variable', 'PROFILEMATE')}={r['activation']['PROFILEMATE']!s}"
        f"  -> {r['activation']['note']}",
        f"  start-up hook (.pth): {r['activation']['pth'] or 'not installed'}",
        f"  vLLM plugin entry point: {r['activation']['plugin_entry_point'] or 'not registered'}"
        + (
            ""
            if r["activation"]["plugin_allowed_by_VLLM_PLUGINS"]
            else " (excluded by VLLM_PLUGINS)"
        ),
        "  would fire: " + ("; ".join(r["activation"]["would_fire"]) or "nothing"),
        "",
        "Output",
        f"  {r['output']['dir']}: {'writable' if r['output']['writable'] else 'NOT WRITABLE'} ({r['output']['detail']})",
        "",
        "Targets",
    ]
    for t in r["targets"]:
        if "present" not in t:
            mark = "?"
        elif not t["present"]:
            mark = "-"
        elif t.get("signature_ok") is False:
            mark = "!"
        else:
            mark = "+"
        rng = "" if t["in_range"] in (None, True) else f"  (outside {t['vllm_range']})"
        detail = f"  {t['detail']}" if t.get("detail") else ""
        lines.append(
            f"  [{mark}] {t['target']}  [{t['category']}; {'/'.join(t['roles'])}]{rng}{detail}"
        )
    lines.append("  (+ present  - absent  ! signature differs  ? vLLM not importable)")
    moe = r.get("moe")
    if moe:
        lines += [
            "",
            "MoE counting",
            f"  path here: {moe.get('path')} -- {moe.get('why')}",
            f"  custom op profilemate::moe_count: {moe.get('custom_op', '-')}",
            f"  routing hook: {moe.get('capture_fn', '-')}",
        ]
        for setting, path in (moe.get("modes") or {}).items():
            lines.append(f"  {setting}: {path}")
    lines.append("")
    if r["problems"]:
        lines.append("Problems")
        lines += [f"  * {p}" for p in r["problems"]]
    else:
        lines.append("No problems found.")
    return "\n".join(lines)
