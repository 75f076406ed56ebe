"""Scoring students with lm-eval on the hubtool tasks in eval_tasks/, in-domain and out-of-domain.

    run_eval(["smollm2-135m", "runs/student"], Path("eval-out"), suites=["gym"],
             options=EvalOptions(limit=20, max_gen_toks=128))

writes lm-eval's results and samples per model, then report.md (model x task, with in-domain and
out-of-domain averages), report.png and scores.json. Which tasks and suites exist is
`toolkit.sources.eval_tasks` (builds read it too). Importing this package imports no lm-eval,
torch or matplotlib; they load when a run starts.
"""

from toolkit.evaluate.models import BACKENDS, ModelSpec, model_spec
from toolkit.evaluate.report import FILTERS, Report
from toolkit.evaluate.run import EvalOptions, EvalResult, run_eval

__all__ = [
    "BACKENDS",
    "FILTERS",
    "EvalOptions",
    "EvalResult",
    "ModelSpec",
    "Report",
    "model_spec",
    "run_eval",
]
