"""The ``repliflow`` command."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable

from repliflow import __version__


def _audit(args: argparse.Namespace) -> int:
    from repliflow.store.audit import audit

    result = audit(
        args.results,
        args.workers,
        config=args.config,
        workdir=args.workdir,
        check_code=not args.no_code,
        store=args.store,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for problem in result.problems:
            print(f"{'STALE' if problem.kind == 'stale' else 'BAD'} {problem.path}: {problem.problem}")
        for note in result.notes:
            print(f"note: {note}")
        verdict = "all match their records" if result.ok else f"{len(result.problems)} problem(s)"
        print(f"audited {result.checked} outputs in {args.results}: {verdict}")
        if result.repair:
            print(f"repair with: {shlex.join(result.repair)}")
    if args.prov:
        _write_prov(args.results)
    return 0 if result.ok else 1


def _init(args: argparse.Namespace) -> int:
    """The starter experiment (repliflow.starter), or a shipped example with
    the starter's Snakefile and .gitignore; never over an existing file."""
    import shutil
    from pathlib import Path

    from repliflow import starter
    from repliflow.shipped import examples_dir

    target = Path(args.directory)
    files = dict(starter.FILES)
    copied = None
    if args.example:
        source = examples_dir() / args.example
        copied = target / "examples" / args.example
        del files["steps.py"]
        files["config/config.yaml"] = (source / "config.yaml").read_text()
    existing = [str(target / name) for name in files if (target / name).exists()]
    if copied is not None and copied.exists():
        existing.append(str(copied))
    if existing:
        print(f"repliflow init: {', '.join(existing)} already exist(s); nothing written", file=sys.stderr)
        return 1
    try:
        if copied is not None:
            shutil.copytree(source, copied, ignore=shutil.ignore_patterns("__pycache__"))
        for name, text in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)
    except OSError as exc:
        print(f"repliflow init: cannot write the experiment into {target}: {exc}", file=sys.stderr)
        return 1
    written = ", ".join(str(target / name) for name in files) + (f", {copied}/" if copied else "")
    where = "" if target.resolve() == Path.cwd().resolve() else f"cd {target} && "
    print(f"wrote {written}; run it with: {where}snakemake --cores all", file=sys.stderr)
    return 0


def _snakefile(args: argparse.Namespace) -> int:
    from repliflow.shipped import snakefile

    print(snakefile())
    return 0


def _run_workflow(argv: list[str]) -> int:
    """``snakemake --snakefile <the shipped workflow> ARGS`` in this process, so
    the interpreter (and its installed repliflow) is the one jobs use too."""
    from pathlib import Path

    from repliflow.shipped import snakefile
    from repliflow.snakemake.command import DEFAULT_CONFIG

    asks_for_help = any(word in ("-h", "--help") for word in argv)
    names_config = any(word.startswith(("--configfile", "--configfiles")) for word in argv)
    workdir = next((argv[i + 1] for i, word in enumerate(argv[:-1]) if word in ("-d", "--directory")), ".")
    if not (asks_for_help or names_config or (Path(workdir) / DEFAULT_CONFIG).exists()):
        print(
            f"repliflow run: no {DEFAULT_CONFIG} in {Path(workdir).resolve()}: write a runnable "
            "experiment there with `repliflow init`, or name yours with --configfile",
            file=sys.stderr,
        )
        return 1
    if not any("htcondor" in word for word in argv):
        # Snakemake imports every installed executor plugin at start; HTCondor's
        # Python bindings then warn that no pool is configured, on every run
        # that does not use HTCondor at all (with the cluster extra installed)
        import warnings

        warnings.filterwarnings("ignore", message="The environment variable CONDOR_CONFIG is unset")
    from snakemake.cli import main as snakemake_main  # loads every executor plugin: only now

    try:
        snakemake_main(["--snakefile", str(snakefile()), *argv])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _write_prov(results: str) -> None:
    from pathlib import Path

    from repliflow.errors import RepliflowError
    from repliflow.store.prov import to_prov
    from repliflow.store.storage import atomic_write

    target = Path(results, "provenance.prov.json")
    try:
        document = to_prov(results)
    except RepliflowError as exc:
        print(f"no PROV-JSON export: {exc}", file=sys.stderr)
        return
    atomic_write(target, json.dumps(document, separators=(",", ":")).encode())
    print(f"wrote the W3C PROV-JSON export {target}", file=sys.stderr)


def _trust(args: argparse.Namespace) -> int:
    from repliflow.store.trust import key_file, trust, unsigned_pickles

    pending, result = unsigned_pickles(args.results, args.store)
    for refused in result.refused:
        print(f"not signed: {refused}", file=sys.stderr)
    if not pending:
        print(f"nothing to sign in {args.results}: {result.already} pickle(s) already signed by your key")
        return 1 if result.refused else 0
    print(f"{len(pending)} pickle(s) in {args.results} were not written by this machine (or were replaced):")
    for sidecar_path, _ in pending[:20]:
        print(f"  {sidecar_path.parent / sidecar_path.name.removesuffix('.meta.json')}.pkl")
    if len(pending) > 20:
        print(f"  ... and {len(pending) - 20} more")
    print(
        "Loading a pickle runs whatever code it holds. Sign them only if you trust whoever made "
        f"this folder; they are signed with your key {key_file()}."
    )
    if not args.yes:
        if not sys.stdin.isatty():
            print("repliflow trust: not confirmed (no terminal); run it with --yes to sign", file=sys.stderr)
            return 1
        if input("Sign them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing signed")
            return 1
    trust(args.results, pending, result)
    for refused in result.refused:
        print(f"not signed: {refused}", file=sys.stderr)
    print(f"signed {len(result.signed)} pickle(s); runs may now load them")
    return 1 if result.refused else 0


def _status(args: argparse.Namespace) -> int:
    from repliflow.engine.status import format_status, status

    result = status(args.config, args.directory)
    print(json.dumps(result.to_json(), indent=2) if args.json else format_status(result))
    return 0


def _gc(args: argparse.Namespace) -> int:
    from repliflow.store.gc import format_gc, gc

    result = gc(args.configs, args.directory, delete=args.delete, forget_missing=args.forget_missing)
    print(json.dumps(result.to_json(), indent=2) if args.json else format_gc(result))
    return 1 if result.errors else 0


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a RepliflowError ends it with its message and exit 1."""
    from repliflow.errors import RepliflowError

    try:
        return handler(args)
    except RepliflowError as exc:
        print(str(exc), file=sys.stderr)
        return 1


def _power(args: argparse.Namespace) -> int:
    """The plan, or one line on stderr and exit 1 when the tables cannot be read
    (missing, unreadable, malformed or unsafe: the results may be someone else's)."""
    from repliflow.errors import RepliflowError
    from repliflow.report.tables import read_results
    from repliflow.stats.power import format_replicate_plan, jsonable, replicate_plan

    try:
        results = read_results(args.results)
        names = [h["name"] for h in results.hypotheses]
        if args.hypothesis is not None and args.hypothesis not in names:
            raise RepliflowError(
                f"repliflow power: no hypothesis {args.hypothesis!r} (there are: {', '.join(names)})"
            )
        result = replicate_plan(
            results,
            effect=args.effect,
            target=args.power,
            hypothesis=args.hypothesis,
            configfile=args.configfile,
        )
    except FileNotFoundError as exc:
        message = (
            f"repliflow power: no {exc.filename or args.results}; run snakemake to make the results first"
        )
    except OSError as exc:
        message = f"repliflow power: cannot read {exc.filename or args.results}: {exc.strerror or exc}"
    except RepliflowError as exc:
        message = str(exc)
    else:
        print(
            json.dumps(jsonable(result), indent=2)
            if args.json
            else format_replicate_plan(result, args.results)
        )
        return 0
    print(" ".join(message.splitlines()), file=sys.stderr)
    return 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after `run` is Snakemake's, --help included
        return _run_workflow(argv[1:])
    from repliflow.shipped import DEFAULT_EXAMPLE, example_names

    parser = argparse.ArgumentParser(prog="repliflow", description="Replicated experiments on Snakemake.")
    parser.add_argument("--version", action="version", version=f"repliflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run",
        help="run the workflow in this directory: `repliflow run --cores all [snakemake options]` "
        "(the workflow shipped with this install; works outside a checkout)",
    )
    init = commands.add_parser(
        "init",
        help="write a runnable starter experiment into a folder: a Snakefile using repliflow as a "
        "Snakemake module, a commented config/config.yaml, steps.py and a .gitignore",
    )
    init.add_argument("directory", nargs="?", default=".", help="where (default: .)")
    init.add_argument(
        "--example",
        choices=example_names(),
        help=f"a shipped example instead of the starter ({DEFAULT_EXAMPLE} is the default experiment "
        "of a checkout), copied to examples/<name>/ with its config as config/config.yaml",
    )
    init.set_defaults(handler=_init)
    where = commands.add_parser(
        "snakefile",
        help="print the path of the installed workflow's Snakefile: "
        'snakemake -s "$(repliflow snakefile)" --cores all',
    )
    where.set_defaults(handler=_snakefile)
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
        "--config",
        help="the current config: staleness is judged against the code file it names "
        "(default: config/config.yaml in --workdir); nothing the results folder names is opened",
    )
    audit.add_argument(
        "--workdir", help="where the config's code path is relative to (default: the folder holding results/)"
    )
    audit.add_argument(
        "--no-code", action="store_true", help="check integrity only, not staleness against the code"
    )
    audit.add_argument("--workers", type=int, help="processes hashing in parallel (default: one per core)")
    audit.add_argument(
        "--store",
        help="the shared store the outputs are in, when not the one provenance.json names "
        "(a copy received with the results folder)",
    )
    audit.set_defaults(handler=_audit)
    trust = commands.add_parser(
        "trust",
        help="sign the pickles of a results folder you received, after you confirm, so runs may load them",
    )
    trust.add_argument("results", help="results/<experiment>")
    trust.add_argument("--yes", action="store_true", help="sign without asking")
    trust.add_argument(
        "--store", help="the shared store its outputs are in, when not the one provenance.json names"
    )
    trust.set_defaults(handler=_trust)
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
    gc.add_argument(
        "--forget-missing",
        action="store_true",
        help="in a shared store: drop the registrations of results folders that no longer exist, "
        "so the outputs only they used are collected too",
    )
    gc.add_argument("-d", "--directory", default=".", help="the working directory of the runs (default: .)")
    gc.add_argument("--json", action="store_true", help="print the findings as JSON")
    gc.set_defaults(handler=_gc)
    power = commands.add_parser(
        "power",
        help="per comparison, the smallest difference the current replicates detect with 80%% power; "
        "for a declared effect (a hypothesis' sesoi, or --effect) the replicates that reach it and the "
        "command that extends the run",
    )
    power.add_argument("results", help="results/<experiment>")
    power.add_argument(
        "--effect",
        type=_finite,
        help="the difference in means to plan for, in metric units (an equivalence test's bound), "
        "for every hypothesis (default: each hypothesis' sesoi; never the observed difference)",
    )
    power.add_argument("--power", type=_fraction, default=0.8, help="the target power (default 0.8)")
    power.add_argument("--hypothesis", help="plan this hypothesis only")
    power.add_argument("--json", action="store_true", help="print the plan as JSON")
    power.add_argument(
        "--configfile",
        metavar="PATH",
        help="the config file the run used, when not config/config.yaml: the printed snakemake command "
        "passes it on (a path is never taken from the results' records)",
    )
    power.set_defaults(handler=_power)
    args = parser.parse_args(argv)
    return _run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
