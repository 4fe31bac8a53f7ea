"""Check a results directory against its recorded provenance, from the files alone.

For every output that ``provenance.json`` lists: the file exists and its
sha256 matches; its sidecar exists, records the same sha256, and its recipe
(function, code hash, params, seed, upstream key) hashes to the output's key;
the upstream sha256 it recorded matches the upstream's output. The tables
(``metrics.csv``, ``hypotheses.json``) must match their recorded sha256 too.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from repliflow import hashing


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str


@dataclass
class AuditResult:
    checked: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "checked": self.checked, "problems": [asdict(p) for p in self.problems]}


def _sha_or_none(path: Path) -> str | None:
    try:
        return hashing.sha256_file(str(path))
    except FileNotFoundError:
        return None


def _check_output(results: Path, output: dict) -> list[Problem]:
    path, sidecar_path = results / output["path"], results / output["sidecar"]
    actual = _sha_or_none(path)
    if actual is None:
        return [Problem(str(path), "missing output")]
    problems = []
    if actual != output["sha256"]:
        problems.append(Problem(str(path), f"sha256 {actual} differs from the recorded {output['sha256']}"))
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        return [*problems, Problem(str(sidecar_path), "missing sidecar")]
    except ValueError as exc:
        return [*problems, Problem(str(sidecar_path), f"sidecar is not valid JSON: {exc}")]
    if sidecar.get("output", {}).get("sha256") != output["sha256"]:
        problems.append(Problem(str(sidecar_path), "sidecar records another sha256 than provenance.json"))
    upstream = sidecar.get("upstream") or {}
    try:
        key = hashing.recipe_key(
            sidecar["function"], sidecar["code_hash"], sidecar["params"], sidecar["seed"], upstream.get("key")
        )
    except (KeyError, TypeError, ValueError) as exc:
        return [*problems, Problem(str(sidecar_path), f"sidecar recipe is incomplete: {exc}")]
    if key != output["key"]:
        problems.append(
            Problem(str(sidecar_path), f"recipe in the sidecar hashes to {key}, not to the output's key")
        )
    return problems


def audit(results_dir: str | Path, workers: int = 8) -> AuditResult:
    results = Path(results_dir)
    provenance_path = results / "provenance.json"
    try:
        provenance = json.loads(provenance_path.read_text())
    except FileNotFoundError:
        return AuditResult(0, [Problem(str(provenance_path), "missing: run the workflow first")])
    except ValueError as exc:
        return AuditResult(0, [Problem(str(provenance_path), f"not valid JSON: {exc}")])
    outputs = provenance.get("outputs", [])
    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for found in pool.map(lambda o: _check_output(results, o), outputs, chunksize=64):
            problems.extend(found)
    by_key = {o["key"]: o for o in outputs}
    for output in outputs:
        sidecar_path = results / output["sidecar"]
        try:
            upstream = json.loads(sidecar_path.read_text()).get("upstream")
        except (FileNotFoundError, ValueError):
            continue  # reported above
        if upstream and upstream["key"] in by_key and by_key[upstream["key"]]["sha256"] != upstream["sha256"]:
            problems.append(
                Problem(
                    str(sidecar_path),
                    f"input {upstream['key']} was recorded with another sha256 (broken chain)",
                )
            )
    for name, recorded in (provenance.get("results") or {}).items():
        actual = _sha_or_none(results / name)
        if actual is None:
            problems.append(Problem(str(results / name), "missing"))
        elif actual != recorded:
            problems.append(
                Problem(str(results / name), f"sha256 {actual} differs from the recorded {recorded}")
            )
    return AuditResult(len(outputs), problems)
