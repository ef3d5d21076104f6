"""Run small CPU tensor ops on one thread.

torch splits element-wise ops and sorts over its intra-op threads once they exceed ~32k elements. For the
per-chunk bookkeeping here (firings of one chunk, top-k compaction: 10^4-10^6 elements) the split costs more
than it saves, and on a machine whose cores are shared it stalls: on a busy 2-core machine five such ops on
76k elements took 142 ms with 2 threads and 1.2 ms with 1. The big GEMM and the block-wide compare stay
multi-threaded. The thread count is process-wide: other Python threads running torch ops meanwhile see it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def serial_cpu(device: torch.device | str = "cpu") -> Iterator[None]:
    """Limit torch to one intra-op thread inside the block when ``device`` is a CPU (no-op otherwise)."""
    if torch.device(device).type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
