"""IFEval hooks: lm-eval's own checker (`lm_eval.tasks.ifeval`), made to run offline.

lm-eval's checker needs NLTK's Punkt English model (`punkt_tab`) for two of its 25 instruction
types: `length_constraints:number_sentences` (sentence counts) and `change_case:capital_word_frequency`
(word tokens, split into sentences first). It downloads the model when imported. Where the model is
installed (`python -m nltk.downloader punkt_tab`), it is used and the scores are lm-eval's exactly.
Where it is not, as offline, the download is not attempted and those two checks use NLTK's Punkt
algorithm with no trained parameters (`PunktSentenceTokenizer()`): it knows no abbreviations, so
"Dr. Smith came." counts as two sentences. `PUNKT_MODEL` says which ran; the README says so too.
"""

from __future__ import annotations

import contextlib
import io
import logging

import nltk

log = logging.getLogger(__name__)


def _punkt_model() -> bool:
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return True
    except LookupError:
        return False


PUNKT_MODEL = _punkt_model()

if PUNKT_MODEL:
    from lm_eval.tasks.ifeval import utils as _upstream
else:
    _download = nltk.download
    nltk.download = lambda *args, **kwargs: False  # lm-eval asks for punkt_tab on import; offline it can't
    try:  # (and then prints that it downloaded it, whatever happened: that line is swallowed)
        with contextlib.redirect_stdout(io.StringIO()):
            from lm_eval.tasks.ifeval import instructions_util as _util
            from lm_eval.tasks.ifeval import utils as _upstream
    finally:
        nltk.download = _download
    _UNTRAINED = nltk.tokenize.PunktSentenceTokenizer()

    def _word_tokenize(text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
        """nltk.word_tokenize with the untrained sentence splitter in place of punkt_tab."""
        sentences = [text] if preserve_line else _UNTRAINED.tokenize(text)
        return [token for sentence in sentences for token in nltk.tokenize._treebank_word_tokenizer.tokenize(sentence)]

    class _Nltk:
        """The `nltk` that lm-eval's instruction checks see: the real one, but word_tokenize as above."""

        word_tokenize = staticmethod(_word_tokenize)

        def __getattr__(self, name: str):
            return getattr(nltk, name)

    _util.nltk = _Nltk()
    _util._get_sentence_tokenizer = lambda: _UNTRAINED
    log.warning("IFEval: NLTK's punkt_tab model is not installed; sentence counts use untrained Punkt "
                "(see eval_tasks/ifeval/README.md)")  # fmt: skip


def process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval's IFEval scoring, unchanged: prompt- and instruction-level, strict and loose."""
    return _upstream.process_results(doc, results)


def agg_inst_level_acc(items: list) -> float:
    return _upstream.agg_inst_level_acc(items)


def count_sentences(text: str) -> int:
    """What the sentence-count check counts (for tests and for reading a score)."""
    from lm_eval.tasks.ifeval import instructions_util

    return instructions_util.count_sentences(text)
