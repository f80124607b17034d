"""Checks the production files of manifests/deploy/, which no test can run here (no cluster, no systemd as PID 1).

Run by `make test` with the venv's Python (kubernetes-validate, PyYAML) after the build:
    check_deploy.py CONVERGE_BINARY

- Every Kubernetes manifest validates, strictly (an unknown field is an error), against the schemas of Kubernetes
  KUBERNETES_VERSION that kubernetes-validate bundles, offline; a kind it has no schema for is an error too.
  kustomization.yaml applies every manifest but secret.yaml, the shape of a Secret created from files.
- What the Deployment names exists: the ConfigMap and its keys, the Secret's keys, the port its Service targets; the
  Service and the PodDisruptionBudget select its pods.
- converge's flags (the Deployment's args, the unit's ExecStart) and CONVERGE_* variables (the ConfigMap, the unit,
  converge.env, commented examples included) are options of `converge serve --help`, or flags issue 14 adds.
- The systemd unit, as shipped and with its PostgreSQL lines uncommented, passes `systemd-analyze verify` in a
  temporary root (the system's units, a stub for each command it runs) without a single diagnostic (an unknown key
  such as ProtectSytem= is only a warning there), and `systemd-analyze security` rates its exposure 2.0 at most.
- Each check refuses a broken copy (BREAKAGES), so none can pass on anything.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "manifests", "deploy")
KUBERNETES = "kubernetes"
UNIT = "converge.service"
ENVIRONMENT_FILE = "converge.env"
# The oldest Kubernetes the manifests are meant for (PodDisruptionBudget policy/v1, seccompProfile fields, ...).
KUBERNETES_VERSION = "1.30.0"
# The unit's highest exposure, in tenths as systemd-analyze's --threshold takes it (a unit without hardening: ~96).
MAX_EXPOSURE = 20
# kubectl apply -k leaves this one out: applied, its empty values would replace a real Secret's.
NOT_APPLIED = {"secret.yaml"}


def documents(directory):
    """Every Kubernetes object of the manifests in `directory`, with its file, and kustomization.yaml."""
    objects, kustomization = [], None
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as file:
            loaded = [document for document in yaml.safe_load_all(file) if document]
        if name == "kustomization.yaml":
            kustomization = loaded[0]
        else:
            objects += [(name, document) for document in loaded]
    return objects, kustomization


def variable(flag):
    """CONVERGE_LEASE_SECONDS for --lease-seconds, as ServeSettings names the variables."""
    return "CONVERGE_" + flag[2:].upper().replace("-", "_")


def unknown_settings(flags, variables, known, where):
    """The flags and CONVERGE_* variables of `where` that `converge serve` does not have."""
    return [f"{where}: converge serve has no flag {flag}" for flag in flags if flag not in known] + [
        f"{where}: converge serve has no setting {name}" for name in variables if name not in map(variable, known)
    ]


def kubernetes_problems(directory, known_flags):
    objects, kustomization = documents(directory)
    problems = []
    for name, document in objects:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(item) for item in error.path)
            problems.append(f"{name}: {document.get('kind')}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: {error.message}")
    files = {name for name, _ in objects}
    listed = set((kustomization or {}).get("resources", []))
    if listed != files - NOT_APPLIED:
        problems.append(f"kustomization.yaml applies {sorted(listed)}, not {sorted(files - NOT_APPLIED)}")

    def one(kind):
        found = [document for _, document in objects if document.get("kind") == kind]
        if len(found) != 1:
            problems.append(f"expected one {kind}, found {len(found)}")
        return found[0] if found else {}

    deployment, service, budget = one("Deployment"), one("Service"), one("PodDisruptionBudget")
    config_map, secret = one("ConfigMap"), one("Secret")
    if problems:
        return problems
    pod = deployment["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    for what, selector in [
        ("the Deployment's selector", deployment["spec"]["selector"]["matchLabels"]),
        ("the Service", service["spec"]["selector"]),
        ("the PodDisruptionBudget", budget["spec"]["selector"]["matchLabels"]),
    ]:
        if not selector or any(labels.get(key) != value for key, value in selector.items()):
            problems.append(f"{what} selects {selector}, which the pods' labels {labels} do not match")
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    ports = {port.get("name") for container in containers for port in container.get("ports", [])}
    for port in service["spec"]["ports"]:
        if port.get("targetPort") not in ports:
            problems.append(f"the Service targets port {port.get('targetPort')!r}, no container has it")
    config_keys = set(config_map.get("data", {}))
    secret_keys = set(secret.get("data", {}))
    for container in containers:
        for source in container.get("envFrom", []):
            reference = source.get("configMapRef")
            if reference and reference["name"] != config_map["metadata"]["name"]:
                problems.append(f"container {container['name']} reads ConfigMap {reference['name']}, not shipped")
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("configMapKeyRef")
            shipped = reference and reference["name"] == config_map["metadata"]["name"]
            if reference and not (shipped and reference["key"] in config_keys):
                problems.append(f"container {container['name']}: {entry['name']} reads a missing {reference}")
    for volume in pod["spec"].get("volumes", []):
        source = volume.get("secret", {})
        if source.get("secretName") == secret["metadata"]["name"]:
            missing = {item["key"] for item in source.get("items", [])} - secret_keys
            if missing or not source.get("items"):
                problems.append(f"volume {volume['name']} mounts keys the Secret lacks: {sorted(missing)}")
    converge = [container for container in pod["spec"]["containers"] if container["name"] == "converge"]
    arguments = converge[0].get("args", []) if converge else []
    if arguments[:1] != ["serve"]:
        problems.append(f"the converge container runs {arguments[:1]}, not serve")
    flags = [argument.split("=")[0] for argument in arguments if argument.startswith("--")]
    variables = [key for key in config_keys if key.startswith("CONVERGE_")]
    problems += unknown_settings(flags, [], known_flags, "deployment.yaml")
    return problems + unknown_settings([], variables, known_flags, "configmap.yaml")


def uncommented(text):
    """The unit with its commented settings (the PostgreSQL lines) in force."""
    return re.sub(r"^#(?=[A-Za-z]+=)", "", text, flags=re.MULTILINE)


def unit_problems(unit_text, environment_text, known_flags):
    problems = []
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return ["systemd-analyze is missing: install the Debian package systemd (make test does as root)"]
    settings = re.findall(r"^#?(\w+)=(.*)$", uncommented(unit_text), flags=re.MULTILINE)
    commands = [shlex.split(value) for key, value in settings if key.startswith("Exec")]
    flags = [word.split("=")[0] for words in commands if "serve" in words for word in words if word.startswith("--")]
    variables = [
        word.split("=")[0]
        for key, value in settings
        if key == "Environment"
        for word in shlex.split(value)
        if word.startswith("CONVERGE_")
    ]
    problems += unknown_settings(flags, variables, known_flags, UNIT)
    variables = re.findall(r"^#?(CONVERGE_\w+)=", environment_text, flags=re.MULTILINE)
    problems += unknown_settings([], variables, known_flags, ENVIRONMENT_FILE)
    for variant, text in [("as shipped", unit_text), ("with the PostgreSQL lines", uncommented(unit_text))]:
        with tempfile.TemporaryDirectory() as root:
            units = next(path for path in ["/usr/lib/systemd/system", "/lib/systemd/system"] if os.path.isdir(path))
            shutil.copytree(units, os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
            os.makedirs(os.path.join(root, "etc/systemd/system"))
            with open(os.path.join(root, "etc/systemd/system", UNIT), "w") as file:
                file.write(text)
            # Every command the unit runs, as a stub: verify refuses a command that is not there.
            for words in commands:
                stub = os.path.join(root, words[0].lstrip("-@:+!").lstrip("/"))
                os.makedirs(os.path.dirname(stub), exist_ok=True)
                with open(stub, "w") as file:
                    file.write("#!/bin/sh\n")
                os.chmod(stub, 0o755)
            verify = subprocess.run(
                [analyze, "verify", "--man=no", f"--root={root}", f"/etc/systemd/system/{UNIT}"],
                capture_output=True,
                text=True,
            )
            output = (verify.stdout + verify.stderr).strip()
            if verify.returncode != 0 or output:
                problems.append(f"systemd-analyze verify, {variant}: exit {verify.returncode}\n{output}")
            security = subprocess.run(
                [analyze, "security", "--offline=yes", f"--root={root}", f"--threshold={MAX_EXPOSURE}", UNIT],
                capture_output=True,
                text=True,
            )
            if security.returncode != 0:
                exposures = [line for line in security.stdout.splitlines() if line.startswith(("✗", "→"))]
                problems.append(
                    f"systemd-analyze security, {variant}: exposure above {MAX_EXPOSURE / 10}\n" + "\n".join(exposures)
                )
    return problems


def problems_of(directory, known_flags):
    """Every problem of the deploy files in `directory`."""

    def read(name):
        with open(os.path.join(directory, name)) as file:
            return file.read()

    return kubernetes_problems(os.path.join(directory, KUBERNETES), known_flags) + unit_problems(
        read(UNIT), read(ENVIRONMENT_FILE), known_flags
    )


# Broken copies each check must refuse: (file, text or pattern, its replacement). The one without the hardening
# passes verify: only the exposure refuses it.
BREAKAGES = [
    (UNIT, "ProtectSystem=strict", "ProtectSytem=strict"),
    (UNIT, "SystemCallFilter=@system-service", "SystemCallFilter=@system-servce"),
    (UNIT, "#LoadCredential=db-password:", "#LoadCredentials=db-password:"),
    (UNIT, re.compile(r"^# Its own user.*?(?=^\[Install\])", re.MULTILINE | re.DOTALL), ""),
    (UNIT, "%d/tokens --secrets-key-file", "%d/tokens --secret-key-file"),
    (ENVIRONMENT_FILE, "CONVERGE_MAX_CONCURRENT_DEPLOYMENTS=", "CONVERGE_MAX_CONCURENT_DEPLOYMENTS="),
    (f"{KUBERNETES}/deployment.yaml", "readinessProbe:", "readinesProbe:"),
    (f"{KUBERNETES}/deployment.yaml", "replicas: 2", "replicas: two"),
    (f"{KUBERNETES}/deployment.yaml", "- --tokens-file", "- --token-file"),
    (f"{KUBERNETES}/deployment.yaml", "{key: tokens, path: tokens}", "{key: token, path: tokens}"),
    (f"{KUBERNETES}/service.yaml", "app.kubernetes.io/name: converge\n  ports", "app: converge\n  ports"),
    (f"{KUBERNETES}/poddisruptionbudget.yaml", "apiVersion: policy/v1", "apiVersion: policy/v2"),
    (f"{KUBERNETES}/configmap.yaml", "CONVERGE_LOG_LEVEL", "CONVERGE_LOGLEVEL"),
    (f"{KUBERNETES}/kustomization.yaml", "  - service.yaml\n", ""),
]


def breakages_passed(known_flags):
    """The breakages the checks let through."""
    passed = []
    for name, text, replacement in BREAKAGES:
        with tempfile.TemporaryDirectory() as directory:
            copy = os.path.join(directory, "deploy")
            shutil.copytree(DEPLOY, copy)
            path = os.path.join(copy, name)
            with open(path) as file:
                original = file.read()
            pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
            broken = pattern.sub(replacement.replace("\\", "\\\\"), original, count=1)
            if broken == original:
                passed.append(f"{name}: no {pattern.pattern!r} to break")
                continue
            with open(path, "w") as file:
                file.write(broken)
            if not problems_of(copy, known_flags):
                passed.append(f"{name}: {pattern.pattern!r} -> {replacement!r} passed the checks")
    return passed


def main():
    help_text = subprocess.run([sys.argv[1], "serve", "--help"], capture_output=True, text=True, check=True).stdout
    known_flags = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    problems = problems_of(DEPLOY, known_flags)
    problems += [f"a broken copy passes: {passed}" for passed in breakages_passed(known_flags)]
    for problem in problems:
        print(f"check_deploy: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"check_deploy: the Kubernetes manifests (against Kubernetes {KUBERNETES_VERSION}) and the systemd unit "
        f"pass; {len(BREAKAGES)} broken copies are refused"
    )


if __name__ == "__main__":
    main()
