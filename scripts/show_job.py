"""Print a ComponentJob's outcome and outputs from its status (read from stdin as JSON).

    kubectl get cjob NAME -o json | python scripts/show_job.py
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    job = json.load(sys.stdin)
    status = job.get("status") or {}
    meta = job["metadata"]
    print(f"{meta['namespace']}/{meta['name']}: {status.get('phase')} ({status.get('reason')})")
    if status.get("errorMessage"):
        print(f"  error: {status['errorMessage']}")
    metrics = status.get("runtimeMetrics") or {}
    instance = metrics.get("instance") or {}
    print(f"  node {instance.get('node')}, algorithm ran {status.get('execDuration')}, pod {status.get('duration')}, "
          f"peak memory {metrics.get('peakMemoryBytes', 0) / 2**20:.1f} MiB")
    for output in status.get("outputs") or []:
        if "value" in output:
            print(f"  output {output['interface']}: {json.dumps(output['value'])}")
        else:
            ref = output.get("file") or output.get("image") or {}
            print(f"  output {output['interface']}: {ref.get('uri')} ({ref.get('size')} bytes, sha256 {str(ref.get('sha256'))[:12]}…)")
    for stream in ("stdout", "stderr"):
        if status.get(stream):
            print(f"  {stream}:")
            for line in status[stream].splitlines()[-5:]:
                print(f"    {line}")
    return 0 if status.get("phase") == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
