"""How the operator's process holds memory: glibc's allocator and Python's collector.

A cycle at 10,000 routes allocates hundreds of MiB that live for seconds (the Prometheus
answers, the namespace lists, the status patches), from the event loop and from the worker
threads that run the blocking clients. What the defaults then keep is the process' RSS
between cycles; these settings give it back. Every function is a no-op without glibc.
"""

from __future__ import annotations

import ctypes
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""

ARENAS = 2
GC_THRESHOLDS = (50_000, 20, 100)
"""Python's defaults are (700, 10, 10)."""


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune() -> bool:
    """Before any thread starts. Returns whether glibc took the settings.

    * Large allocations (128 KiB and up) come from ``mmap`` for good, so freeing them gives
      the memory back. kopf opens one API connection per object it is busy with, all at
      once when it first sees thousands of TimeoutBudgets; each asyncio TLS transport holds
      a 256 KiB read buffer. glibc would raise its mmap threshold past that size (it adapts
      to the largest freed block), the buffers would come from the heap, and after the burst
      the heap could not shrink: 480 MiB RSS at 1,000 routes in the benchmark, 220 MiB with
      this. Same as ``MALLOC_MMAP_THRESHOLD_=131072``.
    * Two arenas instead of eight per core: each worker thread that parses an answer would
      otherwise get an arena of its own, and a thread's arena keeps its freed pages.
      Same as ``MALLOC_ARENA_MAX=2``.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)) and bool(
        libc.mallopt(M_ARENA_MAX, ARENAS)
    )


def collect_less() -> None:
    """Fewer, larger garbage collections, and none over what the imports built.

    A cycle at 10,000 routes allocates millions of short-lived objects while the heap holds
    millions of long-lived ones (kopf, the SDKs, the index of TimeoutBudgets). With the
    default thresholds the collector ran so often, over so much, that it took about a third
    of the benchmark's profile (py-spy, 10,000 routes). ``gc.freeze`` moves what exists
    after the imports out of the collector's sight for good; the higher thresholds make
    young collections rarer. Reference counting still frees everything that is not in a
    cycle at once.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def give_back() -> bool:
    """After a cycle: return the free pages inside the heap to the system (``malloc_trim``).

    glibc returns memory on its own only from the top of the heap; a cycle's answers freed
    below a few long-lived objects stay counted in RSS until the next cycle reuses them.
    Returns whether any memory was released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
