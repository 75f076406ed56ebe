"""A sandbox for untrusted model-written Python: program-of-thought answers, eval-time checks.

    from toolkit.sandbox import Limits, Sandbox, run_program

    with Sandbox(Limits(wall_s=2)) as box:
        results = box.run_many(programs)  # list[ExecResult], in order
    run_program("ans = 2 + 3").value       # "5"

How it isolates a program, what it does not protect against and measured speed: README.md here.
"""

from toolkit.sandbox.limits import Limits
from toolkit.sandbox.result import OUTCOMES, ExecResult, Isolation, Outcome
from toolkit.sandbox.sandbox import DEFAULT_PRELOAD, Sandbox, run_program

__all__ = ["DEFAULT_PRELOAD", "OUTCOMES", "ExecResult", "Isolation", "Limits", "Outcome", "Sandbox", "run_program"]
