"""The ``repliflow`` command."""

from __future__ import annotations

import argparse
import json
import sys

from repliflow import __version__


def _audit(args) -> int:
    from repliflow.audit import audit

    result = audit(args.results)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for problem in result.problems:
            print(f"BAD {problem.path}: {problem.problem}")
        verdict = "all match their records" if result.ok else f"{len(result.problems)} problem(s)"
        print(f"audited {result.checked} outputs in {args.results}: {verdict}")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repliflow", description="Replicated experiments on Snakemake.")
    parser.add_argument("--version", action="version", version=f"repliflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit", help="check every recorded output against its sha256 and recipe; exit 0 only when all hold"
    )
    audit.add_argument("results", help="results/<experiment>")
    audit.add_argument("--json", action="store_true", help="print the findings as JSON")
    audit.set_defaults(handler=_audit)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
