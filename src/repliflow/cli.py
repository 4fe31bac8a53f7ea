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
    args = parser.parse_args(argv)
    return _run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
