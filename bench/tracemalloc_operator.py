"""The operator under ``tracemalloc``: where its memory is held, by allocating line.

    python bench/tracemalloc_operator.py OUT_FILE -- run --standalone -n NAMESPACE ...

Why it exists: goal 5 prints the operator's RSS; this says what holds it. It runs the
operator's own command line in this process with ``tracemalloc`` on (10 frames), and on each
SIGUSR1 writes the 30 largest holders, grouped by the allocating line, the 5 largest again
with their callers, and the traced total to OUT_FILE (appended). Tracing slows the process
several times; use it for where, never for how much CPU.
"""

from __future__ import annotations

import signal
import sys
import threading
import tracemalloc
from pathlib import Path

TRACEBACKS = 5


def main() -> int:
    out = Path(sys.argv[1])
    args = sys.argv[sys.argv.index("--") + 1:]
    tracemalloc.start(10)
    wake = threading.Event()

    def dump_forever() -> None:
        while True:
            wake.wait()
            wake.clear()
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            stats = snapshot.statistics("lineno")
            total = sum(s.size for s in stats)
            with out.open("a") as f:
                f.write(f"== traced {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks\n")
                for stat in stats[:30]:
                    frame = stat.traceback[0]
                    f.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:>9} {frame.filename}:{frame.lineno}\n")
                # The largest holders again with their callers: the line that allocates (json's
                # decoder, say) rarely says who keeps the result.
                for stat in snapshot.statistics("traceback")[:TRACEBACKS]:
                    f.write(f"-- {stat.size / 2**20:.2f} MiB in {stat.count} blocks, allocated from:\n")
                    for frame in stat.traceback.format(most_recent_first=True):
                        f.write(f"   {frame}\n")

    threading.Thread(target=dump_forever, daemon=True).start()
    signal.signal(signal.SIGUSR1, lambda *_: wake.set())
    from component_operator.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
