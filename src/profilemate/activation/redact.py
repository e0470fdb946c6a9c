"""Secrets out of what ProfileMate records: the command line in metadata.json (and any environment
mapping a caller wants to record -- metadata.json records none today).

Replaced by ``***``:

* the value of an option or variable whose *name* has a secret word in it: ``--api-key X``,
  ``--api-key=X``, ``--hf-token X``, ``HF_TOKEN=X``, ``OPENAI_API_KEY``, ``--db-password``. A name
  is split into words at ``-``, ``_``, ``.`` and case changes; a word that is, or ends with, one of
  :data:`SECRET_WORDS` is secret (``token``, ``hftoken``, ``apikey``), a longer word is not
  (``--max-num-batched-tokens``, ``--tokenizer``, ``--ssl-keyfile`` keep their values). Over-redacting
  is the safe side: an option with a secret name that takes no value hides the argument after it
  (unless that one starts with ``-``).
* the text given to an option that carries prompt text: a name with the word ``prompt`` or
  ``prompts`` in it (``--system-prompt``, ``--prompt``), and vLLM CLI's ``--quick`` / ``-q`` (after
  ``chat`` or ``complete``): ProfileMate records no prompt text, not even from the command line.
* inside any value, ``name=value`` and ``"name": "value"`` pairs with a secret name (a query
  string's ``?api_key=X``, JSON given to ``--hf-overrides``), and the user and password part of a
  URL: ``https://user:pass@host`` becomes ``https://***@host``.
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_WORDS = ("token", "secret", "password", "passwd", "pwd", "key", "credential", "credentials")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
_PAIR = re.compile(
    r"""(?P<q>["']?)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P=q)(?P<sep>\s*[:=]\s*)(?!//)"""
    r"""(?P<vq>["']?)(?P<value>[^\s"',;&}]+)(?P=vq)"""
)
_NAME = re.compile(r"-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def is_secret_name(name: str) -> bool:
    """Whether an option or variable name (``--api-key``, ``HF_TOKEN``, ``apiKey``) names a secret."""
    for word in _WORD_SPLIT.split(name.strip("-")):
        w = word.lower()
        if w and any(w == s or w.endswith(s) for s in SECRET_WORDS):
            return True
    return False


def _mask_pair(m: re.Match) -> str:
    if not is_secret_name(m.group("name")):
        return m.group(0)
    q, vq = m.group("q"), m.group("vq")
    return f"{q}{m.group('name')}{q}{m.group('sep')}{vq}{MASK}{vq}"


PROMPT_WORDS = ("prompt", "prompts")


def is_prompt_option(name: str, after_chat: bool = False) -> bool:
    """Whether an option carries prompt text (``--system-prompt``; ``--quick``/``-q`` of
    ``vllm chat``/``vllm complete``)."""
    if name == "--quick" or (after_chat and name == "-q"):
        return True
    return any(w.lower() in PROMPT_WORDS for w in _WORD_SPLIT.split(name.strip("-")))


def redact_text(value: str) -> str:
    """A value with secret ``name=value`` / ``"name": value`` pairs and URL credentials masked."""
    return _PAIR.sub(_mask_pair, _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", value))


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with secret option values (both ``--opt value`` and ``--opt=value``) masked."""
    out: list[str] = []
    hide_next = False
    after_chat = False  # `vllm chat` / `vllm complete`: -q is --quick there
    for arg in argv:
        arg = str(arg)
        if hide_next:
            hide_next = False
            if not arg.startswith("-") or arg == "-":
                out.append(MASK)
                continue
        after_chat = after_chat or arg in ("chat", "complete")
        name, eq, value = arg.partition("=")
        if (
            eq
            and _NAME.fullmatch(name)
            and (
                is_secret_name(name)
                or (name.startswith("-") and is_prompt_option(name, after_chat))
            )
        ):
            out.append(f"{name}={MASK}")  # --api-key=X, HF_TOKEN=X (as given to `env`)
            continue
        if (
            arg.startswith("-")
            and not eq
            and (is_secret_name(arg) or is_prompt_option(arg, after_chat))
        ):
            hide_next = True  # --api-key X
            out.append(arg)
            continue
        out.append(redact_text(arg))
    return out


def redact_env(environ) -> dict[str, str]:
    """An environment mapping with secret variables' values and URL credentials masked."""
    return {
        k: (MASK if is_secret_name(k) else redact_text(str(v))) for k, v in dict(environ).items()
    }
