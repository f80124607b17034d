"""Checks that the editor schemas in manifests/schemas/ accept what `converge validate` accepts.

Run by `make test` with the venv's Python (jsonschema, PyYAML) after the build:
    check_schemas.py CONVERGE_BINARY

- Every manifest of examples/gitops/ and of the loader tests' valid base fixture, which `converge validate` accepts,
  validates against the schema of its kind, document by document.
- Every example file names that schema in a `# yaml-language-server: $schema=` line, by a path relative to it, so an
  editor validates it as it is typed; examples/preview.yaml names preview.json (a preview file has no kind).
- The fixtures that converge refuses for their shape alone (an unknown field, a wrong type, ...) are refused by the
  schemas too, so the check above cannot pass on schemas that accept anything.
"""

import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMAS = os.path.join(ROOT, "manifests", "schemas")
FIXTURES = os.path.join(ROOT, "Tests", "ConvergeManifestsTests", "Fixtures")
ACCEPTED_DIRECTORIES = [os.path.join(ROOT, "examples", "gitops"), os.path.join(FIXTURES, "base")]
PREVIEW_FILES = [os.path.join(ROOT, "examples", "preview.yaml")]
# Fixtures refused for a document's own shape; the other fixtures are refused for what no single document shows
# (dangling references, cycles, params against a bundle's paramsSchema) or for their YAML (syntax, aliases, duplicate
# keys), which no JSON Schema sees.
SHAPE_FIXTURES = ["invalid-identifier", "missing-field", "several-files", "unknown-field", "unknown-kind", "wrong-type"]
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


class CoreLoader(yaml.SafeLoader):
    """Resolves plain scalars with the YAML 1.2 core schema, as converge does (PyYAML's default is YAML 1.1, where
    `on`, `yes` and `2024-01-01` are not strings)."""

    yaml_implicit_resolvers = {}


for tag, pattern, first in [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", list("-+.0123456789")),
    ("merge", r"^<<$", ["<"]),
]:
    CoreLoader.add_implicit_resolver("tag:yaml.org,2002:" + tag, re.compile(pattern), first)


def construct_int(loader, node):
    text = loader.construct_scalar(node)
    base = {"0x": 16, "0o": 8}.get(text[:2])
    return int(text[2:], base) if base else int(text)


CoreLoader.add_constructor("tag:yaml.org,2002:int", construct_int)

validators = {}


def validator(name):
    if name not in validators:
        with open(os.path.join(SCHEMAS, name)) as file:
            validators[name] = jsonschema.Draft202012Validator(json.load(file))
    return validators[name]


def schema_name(document):
    """The schema file of a manifest document: that of its kind."""
    kind = document.get("kind") if isinstance(document, dict) else None
    name = f"{kind.lower()}.json" if isinstance(kind, str) else None
    return name if name and os.path.exists(os.path.join(SCHEMAS, name)) else None


def problems(path, names=None):
    """Every way the documents of `path` fail their schemas: that of their kind, or `names[0]` for each."""
    with open(path) as file:
        text = file.read()
    found = []
    documents = [document for document in yaml.load_all(text, Loader=CoreLoader) if document is not None]
    for index, document in enumerate(documents, 1):
        name = names[0] if names else schema_name(document)
        where = f"{os.path.relpath(path, ROOT)}, document {index}"
        if name is None:
            found.append(f"{where}: no schema for kind {document.get('kind')!r}")
            continue
        for error in validator(name).iter_errors(document):
            field = ".".join(str(part) for part in error.absolute_path)
            found.append(f"{where}: {name}: {field}: {error.message}")
    return found, documents, text


def modeline_problems(path, names):
    """Whether `path` names its schema, the same for every document, in a modeline an editor reads."""
    with open(path) as file:
        modelines = MODELINE.findall(file.read())
    expected = {os.path.relpath(os.path.join(SCHEMAS, name), os.path.dirname(path)) for name in names}
    if len(expected) != 1:
        return [f"{os.path.relpath(path, ROOT)}: holds several kinds, so no one schema line fits: split it by kind"]
    if modelines != list(expected):
        return [f"{os.path.relpath(path, ROOT)}: expected the line `# yaml-language-server: $schema={expected.pop()}`"]
    return []


def manifest_files(directory):
    for parent, _, names in sorted(os.walk(directory)):
        for name in sorted(names):
            if name.endswith((".yaml", ".yml")):
                yield os.path.join(parent, name)


def main():
    converge = sys.argv[1]
    failures = []
    checked = 0
    for directory in ACCEPTED_DIRECTORIES:
        result = subprocess.run([converge, "validate", directory], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"converge validate {directory} refuses it:\n{result.stderr}")
        for path in manifest_files(directory):
            found, documents, _ = problems(path)
            failures += found
            checked += len(documents)
            if directory.startswith(os.path.join(ROOT, "examples")):
                failures += modeline_problems(path, {schema_name(document) or "?" for document in documents})
    for path in PREVIEW_FILES:
        found, documents, _ = problems(path, ["preview.json"])
        failures += found + modeline_problems(path, {"preview.json"})
        checked += len(documents)
    for fixture in SHAPE_FIXTURES:
        if not any(problems(path)[0] for path in manifest_files(os.path.join(FIXTURES, fixture))):
            failures.append(f"fixture {fixture}: converge refuses it, but the schemas accept every document")
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        sys.exit(f"{len(failures)} schema problems")
    print(f"schemas: {checked} documents valid; {len(SHAPE_FIXTURES)} refused fixtures refused by the schemas too")


if __name__ == "__main__":
    main()
