"""Checks the structure of the CI example, examples/ci/preview.yml, which no test can run.

Run by `make test` with the venv's Python (PyYAML) after the build:
    check_ci_workflow.py CONVERGE_BINARY "DEBIAN_PACKAGES"

It must be a valid workflow of one job that installs exactly the Makefile's Debian packages, builds a pinned converge
(CONVERGE_VERSION: this source's release tag or a commit, never a branch) once and caches it under that version,
stands the preview up from examples/preview.yaml, keeps one comment per pull request (finds its own by a marker and
edits it), and destroys the preview on close with flags the CLI has, passing for a pull request that had none.
"""

import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORKFLOW = os.path.join(ROOT, "examples", "ci", "preview.yml")


def main():
    converge, packages = sys.argv[1], sys.argv[2].split()
    failures = []

    def expect(condition, message):
        if not condition:
            failures.append(message)

    with open(WORKFLOW) as file:
        workflow = yaml.safe_load(file)
    triggers = workflow.get("on", workflow.get(True))  # PyYAML reads the key `on` as YAML 1.1's true
    expect(
        set(triggers["pull_request"]["types"]) == {"opened", "reopened", "synchronize", "closed"},
        "runs on pull_request opened, reopened, synchronize and closed",
    )
    expect(list(workflow["jobs"]) == ["preview"], "one job, preview")
    steps = workflow["jobs"]["preview"]["steps"]
    runs = [step.get("run", "") for step in steps]

    with open(os.path.join(ROOT, "Sources", "ConvergeCore", "Version.swift")) as file:
        release = "v" + re.search(r'let convergeVersion = "([^"]+)"', file.read()).group(1)
    version = str(workflow["env"].get("CONVERGE_VERSION", ""))
    expect(
        version == release or re.fullmatch(r"[0-9a-f]{40}", version),
        f"CONVERGE_VERSION pins {release} or a commit, not {version!r}",
    )
    installs = [run for run in runs if "apt-get install" in run]
    line = installs[0].split("apt-get install", 1)[1].splitlines()[0] if installs else ""
    installed = [word for word in line.split() if not word.startswith("-")]
    expect(
        len(installs) == 1 and sorted(installed) == sorted(packages),
        f"one apt-get install -y of the Makefile's DEBIAN_PACKAGES {packages}, got {installed}",
    )
    caches = [step for step in steps if str(step.get("uses", "")).startswith("actions/cache@")]
    expect(
        len(caches) == 1 and "env.CONVERGE_VERSION" in caches[0]["with"]["key"] and caches[0].get("id"),
        "one actions/cache step, with an id, keyed by CONVERGE_VERSION",
    )
    builds = [step for step in steps if "swift build" in step.get("run", "")]
    expect(
        len(builds) == 1
        and caches
        and f"steps.{caches[0].get('id')}.outputs.cache-hit != 'true'" in builds[0].get("if", "")
        and '"$CONVERGE_VERSION"' in builds[0]["run"],
        "one build step, of $CONVERGE_VERSION, skipped when the cache hit",
    )
    ups = [step for step in steps if re.search(r"converge preview \S+ -f examples/preview.yaml", step.get("run", ""))]
    expect(
        len(ups) == 1 and "!= 'closed'" in ups[0].get("if", ""),
        "one step runs converge preview -f examples/preview.yaml, unless closed",
    )
    scripts = [step["with"]["script"] for step in steps if str(step.get("uses", "")).startswith("actions/github-script@")]
    expect(
        len(scripts) == 1
        and "<!--" in scripts[0]
        and "listComments" in scripts[0]
        and "updateComment" in scripts[0],
        "one comment step that finds its previous comment by a marker and updates it",
    )
    destroys = [step for step in steps if "converge preview destroy" in step.get("run", "")]
    expect(
        len(destroys) == 1
        and destroys[0].get("if") == "github.event.action == 'closed'"
        and "--ignore-not-found" in destroys[0]["run"],
        "one step runs converge preview destroy --ignore-not-found when closed",
    )
    help_text = subprocess.run(
        [converge, "preview", "destroy", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in re.findall(r" (--[a-z-]+)", " ".join(step["run"] for step in destroys)):
        expect(flag in help_text, f"converge preview destroy has no flag {flag}")

    for failure in failures:
        print(f"{os.path.relpath(WORKFLOW, ROOT)}: {failure}", file=sys.stderr)
    if failures:
        sys.exit(f"{len(failures)} problems in the CI example")
    print(f"ci example: {len(steps)} steps as expected")


if __name__ == "__main__":
    main()
