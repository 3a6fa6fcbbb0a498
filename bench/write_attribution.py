"""Who wrote what: the API server's write counter split between controller, benchmark client,
scheduler, kwok and the environment's background, for the controller benchmarks' goal 2.

Why it exists: ``apiserver_request_total`` counts requests by verb, group, resource and
subresource, but not by client. A "controller writes per job" figure therefore needs rules for
the rows that are not the controller's. The rules are fixed by what each client does on this
control plane (checked against the plain-pod run, where no controller is involved at all):

* benchmark client: its own creates of the N job objects (``componentjobs`` POST, ``jobs`` POST,
  ``pods`` POST for the plain pods): exactly N, subtracted from that row;
* kube-scheduler: ``pods/binding`` POST and its ``events.k8s.io`` events ("Scheduled");
* kwok (standing in for the kubelet): ``pods/status`` (Running, then Succeeded);
* background, per second rather than per job: ``leases`` (node heartbeats, the API server's own
  lease), ``nodes`` and ``nodes/status``;
* everything else: the controller (for the operator: its ComponentJob status and label writes, the
  pods, ConfigMaps, Secrets, NetworkPolicies and core/v1 events it makes; for the controller-
  manager: the Job controller's pods, pod finalizer patches, Job status and core/v1 events).

Caveat: the counter is cluster-wide. Anything else using the shared control plane during a run
(other people's tests) is counted too, and lands in the controller's rows.
"""

from __future__ import annotations

from collections import Counter

CLIENT, SCHEDULER, KWOK, BACKGROUND, CONTROLLER = ("benchmark client", "kube-scheduler", "kwok", "background",
                                                    "controller")
BACKGROUND_RESOURCES = {"leases", "nodes"}


def row_name(group: str, resource: str, subresource: str, verb: str) -> str:
    name = f"{resource}/{subresource}" if subresource else resource
    if resource == "events" and group:
        name = f"events ({group})"
    return f"{name} {verb}"


def attribute(delta: Counter, client_creates: dict[tuple[str, str, str, str], int]) -> dict[str, dict[str, int]]:
    """{row: {attributed-to: count}} for one run's counter delta; client_creates are the
    benchmark's own writes by key (group, resource, subresource, verb)."""
    rows: dict[str, dict[str, int]] = {}

    def add(row: str, who: str, n: int) -> None:
        if n > 0:
            rows.setdefault(row, {})
            rows[row][who] = rows[row].get(who, 0) + n

    for key, n in delta.items():
        group, resource, subresource, verb = key
        name = row_name(*key)
        own = min(n, client_creates.get(key, 0))
        if own:
            add(f"{name} (benchmark's creates)", CLIENT, own)
            n -= own
        if resource == "pods" and subresource == "binding":
            add(name, SCHEDULER, n)
        elif resource == "events" and group == "events.k8s.io":
            add(name, SCHEDULER, n)
        elif resource == "pods" and subresource == "status":
            add(name, KWOK, n)
        elif resource in BACKGROUND_RESOURCES:
            add(name, BACKGROUND, n)
        else:
            add(name, CONTROLLER, n)
    return rows


def totals(rows: dict[str, dict[str, int]]) -> dict[str, int]:
    out: Counter = Counter()
    for who in rows.values():
        out.update(who)
    return dict(out)


def summarise(delta: Counter, client_creates: dict, n: int) -> dict:
    """The JSON record of one run: raw delta, rows with attribution, totals and per-job figures."""
    rows = attribute(delta, client_creates)
    by = totals(rows)
    return {
        "n": n,
        "raw": {"|".join(k): v for k, v in sorted(delta.items())},
        "rows": rows,
        "totals": by,
        "all_writes": sum(by.values()),
        "controller_writes": by.get(CONTROLLER, 0),
        "controller_writes_per_job": round(by.get(CONTROLLER, 0) / n, 3) if n else None,
    }


def print_table(sides: list[tuple[str, dict]]) -> None:
    """Writes per job, one column per side; rows ordered by who they are attributed to."""
    order = {CONTROLLER: 0, CLIENT: 1, SCHEDULER: 2, KWOK: 3, BACKGROUND: 4}
    keys: dict[str, str] = {}
    for _, s in sides:
        for row, who in s["rows"].items():
            keys.setdefault(row, min(who, key=lambda w: order[w]))
    width = max([len(k) for k in keys] + [30]) + 2
    head = "".join(f"{label:>16}" for label, _ in sides)
    print(f"{'write (verb), per job':<{width}}{'attributed to':<18}{head}")
    for row in sorted(keys, key=lambda r: (order[keys[r]], r)):
        cells = ""
        for _, s in sides:
            count = sum(s["rows"].get(row, {}).values())
            cells += f"{count / s['n']:>16.2f}" if count else f"{'-':>16}"
        print(f"{row:<{width}}{keys[row]:<18}{cells}")
    for who in (CONTROLLER, CLIENT, SCHEDULER, KWOK, BACKGROUND):
        cells = "".join(f"{s['totals'].get(who, 0) / s['n']:>16.2f}" for _, s in sides)
        label = "CONTROLLER WRITES PER JOB" if who == CONTROLLER else f"total: {who}"
        print(f"{label:<{width + 18}}{cells}")
    cells = "".join(f"{s['all_writes'] / s['n']:>16.2f}" for _, s in sides)
    print(f"{'total: all clients':<{width + 18}}{cells}")
