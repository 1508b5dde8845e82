"""Validates an OCI image layout against the OCI image-spec JSON schemas.

Usage: oci_validate.py SCHEMA_DIR LAYOUT_DIR

oci-layout, index.json, and for every manifest the index lists: the manifest and its config.
The schemas' `id`s are URLs; every `$ref` is resolved to the file of that name in SCHEMA_DIR
(nothing is fetched). Prints each problem and exits 1 if there is any.
"""

import json
import os
import sys

import jsonschema
import referencing
import referencing.jsonschema


def main():
    schemas, layout = sys.argv[1], sys.argv[2]

    def retrieve(uri):
        name = uri.rstrip("/").rsplit("/", 1)[-1].split("#")[0]
        with open(os.path.join(schemas, name)) as f:
            return referencing.Resource.from_contents(
                json.load(f), default_specification=referencing.jsonschema.DRAFT4
            )

    registry = referencing.Registry(retrieve=retrieve)

    def check(schema_file, doc, what):
        with open(os.path.join(schemas, schema_file)) as f:
            schema = json.load(f)
        v = jsonschema.Draft4Validator(schema, registry=registry)
        errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            print(f"{what}: {'/'.join(map(str, e.path))}: {e.message}")
        return len(errors)

    def blob(digest):
        algo, hexd = digest.split(":", 1)
        with open(os.path.join(layout, "blobs", algo, hexd)) as f:
            return json.load(f)

    bad = 0
    with open(os.path.join(layout, "oci-layout")) as f:
        bad += check("image-layout-schema.json", json.load(f), "oci-layout")
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    bad += check("image-index-schema.json", index, "index.json")
    for m in index.get("manifests", []):
        manifest = blob(m["digest"])
        bad += check("image-manifest-schema.json", manifest, m["digest"])
        config = blob(manifest["config"]["digest"])
        bad += check("config-schema.json", config, manifest["config"]["digest"])
    if not index.get("manifests"):
        print("index.json lists no manifest")
        bad += 1
    sys.exit(1 if bad else 0)


main()
