"""Where the operator's time goes: py-spy records it during a benchmark run, and the raw stacks
are folded into the top functions by self and inclusive share.

    python bench/pyspy_profile.py fold RAW_FILE [--top 25]     (re-print a saved recording)

Why it exists: the throughput figures say how much CPU the operator spends per job; the team also
needs to say *where*. ``py-spy record -f raw --gil`` samples (100 Hz) only the thread holding the
GIL, so the samples are the Python time of the process (not its idle awaits), and ``--subprocesses``
includes the validation workers. py-spy is the pinned optional dependency group ``bench``
(``pip install -e '.[bench]'``; ``make bench`` installs it). Sampling pauses the process for each
sample (the default, for consistent stacks), so a --profile run's wall and CPU figures are a few
per cent worse than an unprofiled run's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 100
#: Functions on at least this share of the stacks are the "spine" (entry point, event loop).
SPINE = 0.9
_LINE = re.compile(r":\d+\)$")


def pyspy_binary() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


class Recorder:
    """``py-spy record`` of a process (and its subprocesses) into a raw file, until ``stop``."""

    def __init__(self, pid: int, out: Path, rate: int = RATE) -> None:
        binary = pyspy_binary()
        if binary is None:
            raise SystemExit("--profile needs py-spy: pip install -e '.[bench]' (make bench installs it)")
        self.out, self.rate = out, rate
        self.log = open(out.with_suffix(".log"), "wb")
        self.proc = subprocess.Popen([binary, "record", "-p", str(pid), "-f", "raw", "--gil", "--subprocesses",
                                      "-r", str(rate), "-o", str(out)], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> Path:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        return self.out


def _frame(frame: str) -> str:
    """"reconcile (component_operator/handlers/job.py:123)" -> "reconcile (component_operator/handlers/job.py)"."""
    return _LINE.sub(")", frame.strip())


def fold(raw: Path) -> dict:
    """Self and inclusive samples by function (line numbers dropped), and samples by process."""
    self_counts: Counter = Counter()
    inclusive: Counter = Counter()
    processes: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            processes[frames[0].split(":", 1)[0]] += n
            frames = frames[1:]
        if not frames:
            continue
        total += n
        functions = [_frame(f) for f in frames]
        self_counts[functions[-1]] += n
        for function in set(functions):
            inclusive[function] += n
    return {"samples": total, "self": self_counts, "inclusive": inclusive, "processes": processes}


def summary(folded: dict, top: int = 25, seconds: float | None = None, rate: int = RATE) -> dict:
    total = folded["samples"] or 1

    def pct(counter: Counter) -> list[list]:
        return [[name, n, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    # The entry point and the event loop are on (nearly) every stack: left out of the inclusive list.
    spine = {name for name, n in folded["inclusive"].items() if n >= SPINE * total}
    branches = Counter({name: n for name, n in folded["inclusive"].items() if name not in spine})
    out = {"samples": folded["samples"], "self": pct(folded["self"]), "inclusive": pct(branches),
           "spine": sorted(spine), "processes": dict(folded["processes"])}
    if seconds:
        out["gil_held_fraction"] = round(folded["samples"] / (seconds * rate), 3)
    return out


def print_summary(s: dict, top: int = 25) -> None:
    busy = f", ~{100 * s['gil_held_fraction']:.0f}% of the run holding the GIL" if "gil_held_fraction" in s else ""
    print(f"py-spy: {s['samples']} samples with the GIL held{busy}; by process: "
          + ", ".join(f"{p} {n}" for p, n in s["processes"].items()))
    for title, key in (("self (the function itself was on top of the stack)", "self"),
                       ("inclusive (the function was anywhere on the stack; the entry point and event loop, on >= 90% of "
                        "stacks, left out)", "inclusive")):
        print(f"\n  top {top} by {title}")
        for name, _, p in s[key][:top]:
            print(f"  {p:>6.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fold"])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print_summary(summary(fold(args.raw), args.top), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
