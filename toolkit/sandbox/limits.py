"""What one program may use: time, memory, output, disk. Checked when made, not mid-run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from toolkit.errors import UserError


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-program limits. The defaults suit program-of-thought answers, which run in milliseconds.

    - `wall_s`: wall-clock seconds before the program is killed (reported as `timeout`).
    - `cpu_s`: CPU seconds (whole seconds: the kernel's RLIMIT_CPU has no finer grain); a program
      that blocks signals is killed one second later all the same.
    - `memory_mb`: all the memory the program may hold: address space it may add to the
      pre-started interpreter (RLIMIT_AS above the server's own size, so preloading numpy does not
      eat the budget) plus its private /tmp, a tmpfs of `disk_mb` (RAM), so RLIMIT_AS gets
      `memory_mb - disk_mb`. Memory outside both (memfd, SysV/POSIX shared memory, /dev/shm,
      socket buffers, grown pipes) is refused.
    - `output_chars`: characters of stdout kept; writing more stops the program (`output_limit`).
    - `answer_chars`: longest `ans` rendering accepted (`bad_answer` beyond; an int of more digits
      is refused before it is turned into a string, which would be quadratic).
    - `disk_mb`: the size of every file the program writes, and of its private /tmp.
    """

    wall_s: float = 5.0
    cpu_s: int = 3
    memory_mb: int = 512
    output_chars: int = 16_384
    answer_chars: int = 1_000
    disk_mb: int = 16

    def __post_init__(self) -> None:
        bounds = {
            "wall_s": (0.01, 3600), "cpu_s": (1, 3600), "memory_mb": (16, 1 << 20),
            "output_chars": (0, 1 << 28), "answer_chars": (1, 1 << 20), "disk_mb": (1, 1 << 20),
        }  # fmt: skip
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            kind = int if name != "wall_s" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
                raise UserError(
                    f"sandbox limit {name}={value!r} is out of range; use a number from {low} to {high}."
                )
        if self.memory_mb - self.disk_mb < 8:
            raise UserError(
                f"sandbox limit memory_mb={self.memory_mb} leaves no room beside disk_mb={self.disk_mb}: the private"
                " /tmp is RAM and counts against memory_mb; raise memory_mb or lower disk_mb."
            )

    def to_dict(self) -> dict:
        return asdict(self)
