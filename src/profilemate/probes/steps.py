"""The engine step id, one definition for every category that observes ``Scheduler.schedule``.

Several categories wrap ``Scheduler.schedule`` (the registry stacks their wrappers, in no promised
order), and any of them may be switched off, so none of them may own the numbering. The step is
vLLM's own counter: ``Scheduler.current_step`` is incremented on the first line of every
``schedule()`` call (vLLM 0.32.0, ``v1/core/sched/scheduler.py``), so before the call the step about
to run is ``current_step + 1`` and after it ``current_step`` -- every wrapper computes the same
number, however many there are. Older schedulers without the attribute fall back to counting
``schedule()`` calls, on the scheduler object itself: the before hooks all predict ``last + 1`` and
the first after hook to run commits it, so stacked wrappers still agree.

The after hook stamps the number on the returned ``SchedulerOutput`` (``STEP_ATTR``): vLLM's
multiprocessing executor pickles that object to the workers, and a dataclass without
``__slots__`` keeps the attribute, so the workers and ``update_from_output`` read the same step
with ``of(scheduler_output)``.
"""

from __future__ import annotations

STEP_ATTR = "_profilemate_step"

_LAST_ATTR = "_profilemate_last_step"  # fallback numbering, for schedulers without current_step


def schedule_before(scheduler) -> int:
    """The step id of the ``schedule()`` call about to run (use with ``sets_step=True``)."""
    cs = getattr(scheduler, "current_step", None)
    if type(cs) is int:
        return cs + 1
    return getattr(scheduler, _LAST_ATTR, 0) + 1


def schedule_after(result, scheduler) -> int:
    """The step id of the ``schedule()`` call that returned ``result``; stamps it on the result."""
    if result is not None:
        s = getattr(result, STEP_ATTR, None)
        if s is not None:
            return s
    cs = getattr(scheduler, "current_step", None)
    if type(cs) is int:
        step = cs
    else:
        step = getattr(scheduler, _LAST_ATTR, 0) + 1
        setattr(scheduler, _LAST_ATTR, step)
    if result is not None:
        try:
            result._profilemate_step = step  # STEP_ATTR; a plain store is the fast path
        except AttributeError:  # a frozen dataclass, should SchedulerOutput become one
            object.__setattr__(result, STEP_ATTR, step)
    return step


def of(scheduler_output, default: int = -1) -> int:
    """The step stamped on a ``SchedulerOutput`` (``default`` when it carries none)."""
    return getattr(scheduler_output, STEP_ATTR, default)
