"""Where the method comes from, and the preset that follows the paper where it is known.

Found (the ACL Anthology entry, the abstract, and a summary of the paper; see the card): a teacher LLM
writes, for an input, a counterfactual that is very similar to it but whose task label is changed
to a desired one; multi-view chain of thought (arguing for the right answer and against the wrong
ones) adds diversity to the rationales; small students are fine-tuned on the original and
counterfactual data and are more robust out of distribution, on four NLP benchmarks.

Not found in what could be read: the prompts, how many counterfactuals per example, how they were
validated, the number of views, sampling settings. Those are hubtool's choices, set as defaults and
named in the preset's `about` and on the card.
"""

from __future__ import annotations

from toolkit.builders.config import Preset
from toolkit.builders.method import Paper

PAPER = Paper(
    name="Counterfactual Distillation",
    citation='Feng, Li, Chenglin, Chen, Yu & Zhang, "Teaching Small Language Models Reasoning through '
    'Counterfactual Distillation", EMNLP 2024',
    url="https://aclanthology.org/2024.emnlp-main.333",
    summary="A teacher LLM rewrites each labelled input into a counterfactual that is very similar to it but "
    "whose task label is changed to a desired one; the counterfactuals are validated, and the teacher "
    "explains originals and counterfactuals from several views (why the answer is right, why the others are "
    "wrong). The student is fine-tuned on original and counterfactual rationales, which makes it less "
    "reliant on spurious cues and more robust out of distribution.",
    tags=("reasoning", "chain-of-thought", "counterfactual", "data-augmentation"),
    bibtex="""@inproceedings{feng-etal-2024-teaching-small,
    title = "Teaching Small Language Models Reasoning through Counterfactual Distillation",
    author = "Feng, Tao and
      Li, Yicheng and
      Chenglin, Li and
      Chen, Hao and
      Yu, Fei and
      Zhang, Yin",
    editor = "Al-Onaizan, Yaser and
      Bansal, Mohit and
      Chen, Yun-Nung",
    booktitle = "Proceedings of the 2024 Conference on Empirical Methods in Natural Language Processing",
    month = nov,
    year = "2024",
    address = "Miami, Florida, USA",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.emnlp-main.333",
    pages = "5831--5842"
}""",
)

PRESETS = {
    "feng-emnlp24": Preset(
        about="the paper's design: one counterfactual per example with its label changed to a desired one, and "
        "multi-view CoT (why the answer is right, why each other answer is wrong); counts and thresholds the "
        "paper does not state are hubtool's",
        values={"targets": "one", "refute_views": "all", "samples": 1, "candidates": 1, "max_edit": 0.3,
                "judge_votes": 3},
    ),
}
