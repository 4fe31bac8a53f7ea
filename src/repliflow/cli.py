"""The ``repliflow`` command."""

from __future__ import annotations

import argparse
import json
import sys

from repliflow import __version__


def _audit(args) -> int:
    from repliflow.audit import audit

    result = audit(args.results, args.workers, workdir=args.workdir, check_code=not args.no_code)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for problem in result.problems:
            print(f"{'STALE' if problem.kind == 'stale' else 'BAD'} {problem.path}: {problem.problem}")
        for note in result.notes:
            print(f"note: {note}")
        verdict = "all match their records" if result.ok else f"{len(result.problems)} problem(s)"
        print(f"audited {result.checked} outputs in {args.results}: {verdict}")
    if args.prov:
        _write_prov(args.results)
    return 0 if result.ok else 1


def _write_prov(results: str) -> None:
    from pathlib import Path

    from repliflow.errors import RepliflowError
    from repliflow.prov import to_prov
    from repliflow.storage import atomic_write

    target = Path(results, "provenance.prov.json")
    try:
        document = to_prov(results)
    except RepliflowError as exc:
        print(f"no PROV-JSON export: {exc}", file=sys.stderr)
        return
    atomic_write(target, json.dumps(document, indent=1).encode())
    print(f"wrote the W3C PROV-JSON export {target}", file=sys.stderr)


def _status(args) -> int:
    from repliflow.status import format_status, status

    result = status(args.config, args.directory)
    print(json.dumps(result.to_json(), indent=2) if args.json else format_status(result))
    return 0


def _gc(args) -> int:
    from repliflow.gc import format_gc, gc

    result = gc(args.configs, args.directory, delete=args.delete)
    print(json.dumps(result.to_json(), indent=2) if args.json else format_gc(result))
    return 1 if result.errors else 0


def _run(handler, args) -> int:
    """Run a command; a RepliflowError ends it with its message and exit 1."""
    from repliflow.errors import RepliflowError

    try:
        return handler(args)
    except RepliflowError as exc:
        print(str(exc), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repliflow", description="Replicated experiments on Snakemake.")
    parser.add_argument("--version", action="version", version=f"repliflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit", help="check every recorded output against its sha256 and recipe; exit 0 only when all hold"
    )
    audit.add_argument("results", help="results/<experiment>")
    audit.add_argument("--json", action="store_true", help="print the findings as JSON")
    audit.add_argument(
        "--prov",
        action="store_true",
        help="also write the W3C PROV-JSON export <results>/provenance.prov.json",
    )
    audit.add_argument(
        "--workdir", help="where the config's code path is relative to (default: the folder holding results/)"
    )
    audit.add_argument(
        "--no-code", action="store_true", help="check integrity only, not staleness against the code"
    )
    audit.add_argument("--workers", type=int, help="processes hashing in parallel (default: one per core)")
    audit.set_defaults(handler=_audit)
    status = commands.add_parser(
        "status",
        help="per condition: replicates done, failed, running, incomplete, missing; the command to finish",
    )
    status.add_argument(
        "config", nargs="?", help="the experiment's config (default: config/config.yaml in -d)"
    )
    status.add_argument(
        "-d", "--directory", default=".", help="the working directory of the run (default: .)"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)
    gc = commands.add_parser("gc", help="list (with --delete remove) stored outputs no given config needs")
    gc.add_argument(
        "configs", nargs="*", help="every config using the experiment (default: config/config.yaml in -d)"
    )
    gc.add_argument("--delete", action="store_true", help="remove them (default: only list them)")
    gc.add_argument("-d", "--directory", default=".", help="the working directory of the runs (default: .)")
    gc.add_argument("--json", action="store_true", help="print the findings as JSON")
    gc.set_defaults(handler=_gc)
    args = parser.parse_args(argv)
    return _run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
