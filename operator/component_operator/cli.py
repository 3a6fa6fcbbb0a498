"""The ``component-operator`` command line.

Subcommands:
  run        the operator (kopf) against the current kubeconfig
  crds       print (or --write) the CustomResourceDefinitions generated from the models
  validate   offline checks of values and interface manifests (exit 0 valid, 1 invalid, 2 usage)
  agent      the data-plane agent inside job pods: prepare | run -- PROGRAM | version
  batch      ComponentBatches: run -f FILE [--dry-run] [--wait] | status NAME | wait NAME
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


def _cmd_crds(args: argparse.Namespace) -> int:
    from .api import crdgen

    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for resource in crdgen.RESOURCES:
            (out / crdgen.file_name(resource)).write_text(crdgen.render(resource))
        return 0
    sys.stdout.write(crdgen.render_all())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunOptions, parse_priority, run_operator

    if args.webhook == "cluster" and not args.webhook_cert and not (args.webhook_secret and args.webhook_service):
        sys.stderr.write("component-operator run: --webhook cluster needs --webhook-cert/--webhook-key (e.g. from "
                         "cert-manager) or --webhook-secret and --webhook-service (the operator makes its own)\n")
        return 2
    try:
        priority = parse_priority(args.priority)
    except ValueError:
        sys.stderr.write(f"component-operator run: --priority: expected an integer or 'random', got {args.priority!r}\n")
        return 2
    return run_operator(RunOptions(
        namespaces=args.namespace or [],
        standalone=args.standalone,
        peering=args.peering,
        priority=priority,
        verbose=args.verbose,
        metrics_port=args.metrics_port,
        webhook=args.webhook,
        liveness=args.liveness,
        config_path=args.config,
        metrics_addr=args.metrics_addr,
        webhook_cert=args.webhook_cert,
        webhook_key=args.webhook_key,
        webhook_ca=args.webhook_ca,
        webhook_port=args.webhook_port,
        webhook_secret=args.webhook_secret,
        webhook_service=args.webhook_service,
        webhook_namespace=args.webhook_namespace,
        webhook_configuration=args.webhook_configuration,
    ))


def _cmd_validate(argv: list[str]) -> int:
    from .validate_cli import main as validate_main

    return validate_main(argv)


def _cmd_batch(argv: list[str]) -> int:
    from .batch.cli import main as batch_main

    return batch_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="component-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"component-operator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable); default: all")
    run.add_argument("--standalone", action="store_true", help="do not coordinate with other operator instances (peering)")
    run.add_argument("--peering", help="name of the kopf peering object shared by the replicas: only the one with the "
                     "highest priority works, the others pause (created when missing)")
    run.add_argument("--priority", default="0", help="this replica's peering priority: an integer or 'random' (default 0)")
    run.add_argument("--verbose", action="store_true")
    run.add_argument("--config", help="operator configuration YAML (default: $COMPONENT_OPERATOR_CONFIG or built-in defaults)")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off)")
    run.add_argument("--metrics-addr", default="127.0.0.1", help="address the metrics endpoint binds to")
    run.add_argument(
        "--webhook",
        choices=["none", "local", "cluster"],
        default="none",
        help="serve the validating admission webhook; 'local': on 127.0.0.1 for a control plane on this host; "
        "'cluster': on all addresses, behind the chart's Service",
    )
    run.add_argument("--webhook-cert", help="PEM certificate of the webhook server")
    run.add_argument("--webhook-key", help="PEM private key of the webhook server")
    run.add_argument("--webhook-ca", help="PEM CA bundle that signed the certificate (put into the webhook configuration)")
    run.add_argument("--webhook-port", type=int, default=9443)
    run.add_argument("--webhook-secret", help="cluster mode: Secret in which the operator keeps its own CA and serving "
                     "certificate (created and rotated by the operator)")
    run.add_argument("--webhook-service", help="cluster mode: the webhook's Service (the certificate's DNS names)")
    run.add_argument("--webhook-namespace", help="namespace of the Secret and Service (default: $POD_NAMESPACE)")
    run.add_argument("--webhook-configuration", help="ValidatingWebhookConfiguration whose caBundle the operator keeps current")
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")

    crds = sub.add_parser("crds", help="print the CustomResourceDefinitions")
    crds.add_argument("--write", metavar="DIR", help="write one file per CRD into DIR instead of printing")

    sub.add_parser("validate", help="validate a value or an interface manifest offline", add_help=False)
    sub.add_parser("agent", help="the data-plane agent (inside job pods)", add_help=False)
    sub.add_parser("batch", help="start (or plan), inspect and follow ComponentBatches", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "validate":
        return _cmd_validate(argv[1:])
    if argv and argv[0] == "batch":
        return _cmd_batch(argv[1:])
    if argv and argv[0] == "agent":
        from .agent.main import main as agent_main

        return agent_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "crds":
        return _cmd_crds(args)
    if args.command == "run":
        return _cmd_run(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
