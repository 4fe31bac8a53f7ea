"""Export a results directory's provenance as W3C PROV-JSON.

PROV-JSON (https://www.w3.org/submissions/prov-json/) is what provenance
tools read (the ``prov`` Python package, ProvStore, PROV-N converters). The
mapping, from ``provenance.json`` and the sidecars:

- every step output is an *entity* ``exp:store/<kk>/<key>.<ext>`` (sha256,
  key, step, replicate, conditions, format);
- making it is an *activity* ``exp:run/<key>`` (start and end time, params,
  seed, step seed, host, python), which *used* its input and
  *wasAssociatedWith* the agent ``repliflow:repliflow``, following the *plan*
  ``exp:code/<function>/<code hash>``: the step's code;
- the output *wasGeneratedBy* that activity and *wasDerivedFrom* its input;
- ``exp:aggregate`` used every final output and the config entity
  ``exp:config`` and generated ``exp:metrics.csv`` and ``exp:hypotheses.json``.

Identifiers are URNs (``urn:repliflow:...``), so the export does not depend
on where the results directory lies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repliflow.core.records import check_sidecar
from repliflow.errors import LayoutError
from repliflow.store.layout import ResultsLayout, output_paths
from repliflow.store.pathgate import read_json
from repliflow.store.provenance import read_provenance

NAMESPACE = "urn:repliflow:terms#"
AGENT = "repliflow:repliflow"

# A PROV-JSON document: section ("entity", "activity", ...) -> identifier -> attributes
# ("prefix" maps prefixes to namespaces).
ProvDocument = dict[str, dict[str, object]]


def _sidecar(layout: ResultsLayout, entry: Mapping[str, Any]) -> Mapping[str, object]:
    """The entry's sidecar, type-checked; empty when it is missing or malformed
    (the export then says less about that output; ``audit`` names the file)."""
    path = layout.in_store(entry["sidecar"])
    try:
        return check_sidecar(read_json(path, "sidecar", layout.store), path, entry["key"])
    except (LayoutError, OSError):
        return {}


def _qname(name: str) -> dict[str, str]:
    return {"$": name, "type": "prov:QUALIFIED_NAME"}


def _literal(value: object) -> str | int | float:
    """A PROV-JSON attribute value: strings, numbers and booleans as they are,
    anything else as its JSON text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value, sort_keys=True)


def to_prov(results_dir: str | Path) -> ProvDocument:
    """The PROV-JSON document for ``results/<experiment>``."""
    results = Path(results_dir)
    provenance = read_provenance(results)
    experiment = str(provenance.get("experiment", results.name))
    entries: list[dict[str, Any]] = []
    for index, entry in enumerate(provenance["outputs"]):
        output_paths(entry, f"outputs[{index}]")  # raises LayoutError on a malformed or unsafe entry
        entries.append(entry)
    layout = ResultsLayout(str(results), provenance.get("store"))
    sidecars = [_sidecar(layout, entry) for entry in entries]  # small files, in the page cache

    doc: ProvDocument = {
        "prefix": {"repliflow": NAMESPACE, "exp": f"urn:repliflow:experiment:{experiment}/"},
        "entity": {},
        "activity": {},
        "agent": {},
        "used": {},
        "wasGeneratedBy": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
    }
    counters: dict[str, int] = {}

    def relation(kind: str, **attributes: str) -> None:
        counters[kind] = counters.get(kind, 0) + 1
        doc[kind][f"_:{kind}{counters[kind]}"] = {f"prov:{k}": v for k, v in attributes.items()}

    versions = (provenance.get("environment") or {}).get("packages") or {}
    doc["agent"][AGENT] = {
        "prov:type": _qname("prov:SoftwareAgent"),
        "prov:label": "repliflow",
        "repliflow:version": str(versions.get("repliflow", "")),
    }
    doc["entity"]["exp:config"] = {
        "prov:type": _qname("repliflow:Config"),
        "repliflow:configHash": str(provenance.get("config_hash", "")),
        "repliflow:configFiles": str(provenance.get("config_files", "")),
    }

    ids = {entry["key"]: f"exp:{entry['path']}" for entry in entries}
    last_position = max((entry.get("position", 0) for entry in entries), default=0)
    finals: list[str] = []
    for entry, sidecar in zip(entries, sidecars, strict=True):
        key, entity = entry["key"], ids[entry["key"]]
        if entity in doc["entity"]:
            continue
        doc["entity"][entity] = {
            "prov:type": _qname("repliflow:StepOutput"),
            "prov:label": f"{entry.get('step')}, replicate {entry.get('replicate')}",
            "repliflow:key": key,
            "repliflow:sha256": entry["sha256"],
            "repliflow:format": str(entry.get("format", "")),
            "repliflow:step": str(entry.get("step", "")),
            "repliflow:position": entry.get("position"),
            "repliflow:replicate": entry.get("replicate"),
            "repliflow:seed": entry.get("seed"),
            "repliflow:conditions": [str(c) for c in entry.get("conditions") or []],
        }
        activity = f"exp:run/{key}"
        attributes: dict[str, object] = {
            "prov:type": _qname("repliflow:StepRun"),
            "prov:label": f"run {entry.get('step')}",
        }
        for name, source in [("prov:startTime", "started"), ("prov:endTime", "finished")]:
            if isinstance(sidecar.get(source), str):
                attributes[name] = sidecar[source]
        for name in ["params", "seed", "step_seed", "condition", "host", "python", "duration_s"]:
            if name in sidecar:
                attributes[f"repliflow:{name}"] = _literal(sidecar[name])
        doc["activity"][activity] = attributes
        relation("wasGeneratedBy", entity=entity, activity=activity)
        if sidecar.get("function") and sidecar.get("code_hash"):
            code = f"exp:code/{sidecar['function']}/{sidecar['code_hash']}"
            doc["entity"].setdefault(
                code,
                {
                    "prov:type": _qname("prov:Plan"),
                    "repliflow:function": str(sidecar["function"]),
                    "repliflow:codeHash": str(sidecar["code_hash"]),
                },
            )
            relation("wasAssociatedWith", activity=activity, agent=AGENT, plan=code)
        else:
            relation("wasAssociatedWith", activity=activity, agent=AGENT)
        upstream = sidecar.get("upstream")
        if isinstance(upstream, dict) and upstream.get("key") in ids:
            source = ids[upstream["key"]]
            relation("used", activity=activity, entity=source)
            relation("wasDerivedFrom", generatedEntity=entity, usedEntity=source, activity=activity)
        if entry.get("position") == last_position:
            finals.append(entity)

    doc["activity"]["exp:aggregate"] = {"prov:type": _qname("repliflow:Aggregate")}
    relation("wasAssociatedWith", activity="exp:aggregate", agent=AGENT)
    relation("used", activity="exp:aggregate", entity="exp:config")
    for entity in finals:
        relation("used", activity="exp:aggregate", entity=entity)
    for name, sha in (provenance.get("results") or {}).items():
        table = f"exp:{name}"
        doc["entity"][table] = {"prov:type": _qname("repliflow:Table"), "repliflow:sha256": str(sha)}
        relation("wasGeneratedBy", entity=table, activity="exp:aggregate")
    return {kind: value for kind, value in doc.items() if value}
