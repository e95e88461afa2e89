"""Read what the embedded stack's workers logged."""

from __future__ import annotations

from pathlib import Path

# Logged by streams.runtime.delivery_fix when Faust records an offset gap it will commit past;
# on our input topics that means records were fetched and never processed.
OFFSET_GAP = "never arrived"


def worker_log_lines(stack_dir: Path, needle: str) -> list[str]:
    """Lines containing ``needle`` in every worker log under ``stack_dir``."""
    return [
        line
        for log in sorted((stack_dir / "logs").glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if needle in line
    ]


def assert_no_offset_gaps(stack_dir: Path) -> None:
    gaps = worker_log_lines(stack_dir, OFFSET_GAP)
    assert not gaps, f"Faust skipped input offsets: {gaps[:3]}"
