"""A fake teacher for logic tests: queued answers, and a record of what it was asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from toolkit.teachers.base import CallFailure, Completion, OnResult, Request, Result, Teacher


class FakeTeacher(Teacher):
    """Answers each request with `answer(request, sample_idx)` (or a CallFailure); records calls."""

    backend = "fake"

    def __init__(self, answer: Callable[[Request, int], str | CallFailure], model: str = "fake-model") -> None:
        self.model = model
        self.revision = "r1"
        self.answer = answer
        self.calls: list[Request] = []

    def generate(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        results: list[Result] = []
        for i, request in enumerate(requests):
            self.calls.append(request)
            outs = [self.answer(request, j) for j in range(request.n)]
            failure = next((o for o in outs if isinstance(o, CallFailure)), None)
            result: Result = failure or [Completion(o, "stop", 10, len(o.split())) for o in outs]
            results.append(result)
            if on_result:
                on_result(i, result)
        return results

    @property
    def samples_drawn(self) -> int:
        return sum(r.n for r in self.calls)
