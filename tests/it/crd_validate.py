"""Validates custom resources against their CRD's OpenAPI v3 schema, strictly.

Usage: crd_validate.py CRD.yaml FILE.yaml...

Every document of each FILE whose apiVersion and kind are the CRD's is checked against the
schema of its version (spec.versions[].schema.openAPIV3Schema), with unknown fields refused
wherever the schema lists properties and does not preserve unknown fields (what the API
server's strict field validation does). Prints each problem; exits 1 if any, or if no
document was of the CRD's kind.
"""

import sys

import jsonschema
import yaml


def strict(schema):
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def main():
    with open(sys.argv[1]) as f:
        crd = yaml.safe_load(f)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas = {
        f"{group}/{v['name']}": strict(v["schema"]["openAPIV3Schema"])
        for v in crd["spec"]["versions"]
    }
    bad = seen = 0
    for path in sys.argv[2:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            if d.get("kind") != kind:
                continue
            seen += 1
            schema = schemas.get(d.get("apiVersion"))
            if schema is None:
                print(f"{path}: {kind} {d.get('apiVersion')} is not a version of the CRD")
                bad += 1
                continue
            v = jsonschema.Draft7Validator(schema)
            for e in sorted(v.iter_errors(d), key=lambda e: list(e.path)):
                print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
                bad += 1
    if not seen:
        print(f"no {kind} among {sys.argv[2:]}")
        bad += 1
    sys.exit(1 if bad else 0)


main()
