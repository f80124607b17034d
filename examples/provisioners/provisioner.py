#!/usr/bin/env python3
"""An example converge provisioner that simulates Terraform-like applies.

Copy it as the start of your own. It runs two ways:

  provisioner.py serve [--port 8790] [--delay 2] [--state-dir DIR]   a webhook service
  provisioner.py exec                                                 a command (converge's exec provisioner)

It keeps state per instance (a JSON file per instance in the state directory), waits a configurable delay,
prints log lines, and answers with outputs for every artifact of the bundle (ids, endpoints) that downstream
connections use; a database endpoint's password is marked sensitive ({"value": ..., "sensitive": true}). It fails a deployment whose params ask for it ({"fail": true}) or whose instance is listed in
CONVERGE_EXAMPLE_FAIL_INSTANCES.

A plan (action "plan") changes nothing: it compares the params in the instance's state file with the deployment's
and answers {"status": "completed", "planResult": {"changes": [names of the params that differ]}}. That is the
contract converge reads a plan's result by: a non-empty "changes" (an array, or an object keyed by what differs),
or "changed": true / "drifted": true, reports changes; anything else reports none. converge's drift checks
(an environment's driftCheck: {every: 6h}) plan each instance's last applied configuration this way, so an
instance changed out of band, here by editing its state file, is reported Drifted.

As a webhook it checks X-Converge-Signature when CONVERGE_EXAMPLE_WEBHOOK_SECRET is set, and honours
Idempotency-Key: a resend of an attempt replays the first answer instead of applying twice. With a delay and a
callback URL in the request it answers 202 at once and reports phases, log lines, heartbeats and the result to
the callback, as long-running provisioners should.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE_DIR = os.environ.get("CONVERGE_EXAMPLE_STATE_DIR", os.path.join(os.getcwd(), ".provisioner-state"))


def apply(document, log):
    """Applies one deployment document; returns (outcome dict, log lines already sent through `log`)."""
    deployment = document["deployment"]
    instance = deployment["instance"]
    action = deployment["action"]
    params = deployment.get("params") or {}
    os.makedirs(STATE_DIR, exist_ok=True)
    state_file = os.path.join(STATE_DIR, instance + ".json")
    previous = json.load(open(state_file)) if os.path.exists(state_file) else None

    log(f"{action} {instance} at version {deployment.get('version')} (attempt {deployment.get('attempt')})")
    failing = os.environ.get("CONVERGE_EXAMPLE_FAIL_INSTANCES", "").split(",")
    if params.get("fail") is True or instance in failing:
        log("error: the simulated apply failed")
        return {"status": "failed", "error": f"simulated failure of {instance}"}

    if action == "plan":
        before = (previous or {}).get("params", {})
        changes = sorted(k for k in set(before) | set(params) if before.get(k) != params.get(k))
        log(f"plan: {len(changes)} change(s)")
        return {"status": "completed", "planResult": {"changes": changes}}

    if action == "decommission":
        if os.path.exists(state_file):
            os.remove(state_file)
        log(f"destroyed {instance}")
        return {"status": "completed", "outputs": {}}

    outputs = {}
    digest = hashlib.sha256(instance.encode()).hexdigest()[:10]
    for name, artifact_type in sorted((document.get("artifacts") or {}).items()):
        outputs[name] = {
            "id": f"{artifact_type}-{digest}",
            "instance": instance,
            "endpoint": f"{name}.{instance}.example.internal",
        }
        if artifact_type == "postgres-endpoint":
            # Marked sensitive: converge stores it sealed, shows it as [sensitive], and sends it only to the
            # provisioner of an instance connected to this one, in its connectionParams.
            password = hashlib.sha256(f"password of {instance}".encode()).hexdigest()[:20]
            outputs[name]["password"] = {"value": password, "sensitive": True}
        log(f"created {artifact_type} {outputs[name]['id']}")
    with open(state_file, "w") as f:
        json.dump({"params": params, "version": deployment.get("version"), "outputs": outputs}, f, indent=2)
    return {"status": "completed", "outputs": outputs}


def run_exec(delay):
    """Exec mode: the document on stdin, log lines on stdout, a final JSON line with the outcome."""
    document = json.load(sys.stdin)
    time.sleep(delay)
    outcome = apply(document, lambda line: print(line, flush=True))
    print(json.dumps(outcome), flush=True)
    return 0 if outcome["status"] == "completed" else 1


class Handler(BaseHTTPRequestHandler):
    delay = 0.0
    secret = None
    answers = {}  # Idempotency-Key -> (status, body)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.secret:
            expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Converge-Signature", "")):
                return self.answer(401, {"error": "bad signature"})
        key = self.headers.get("Idempotency-Key", "")
        with self.lock:
            if key in self.answers:
                return self.answer(*self.answers[key])
        document = json.loads(body)
        callback = document.get("callback")
        if self.delay > 0 and callback:
            answer = (202, {"status": "accepted"})
            threading.Thread(target=self.report, args=(document, callback, key), daemon=True).start()
        else:
            time.sleep(self.delay)
            outcome = apply(document, lambda line: print(line, flush=True))
            answer = (200, outcome)
        with self.lock:
            self.answers[key] = answer
        self.answer(*answer)

    def report(self, document, callback, key):
        attempt = document["deployment"]["attempt"]

        def send(payload):
            request = urllib.request.Request(
                callback["url"], data=json.dumps(dict(payload, attempt=attempt)).encode(),
                headers={"Content-Type": "application/json", "Authorization": "Bearer " + callback["token"]})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except Exception as error:  # The daemon may be restarting: its lease monitor will probe us.
                print(f"callback failed: {error}", file=sys.stderr, flush=True)

        send({"type": "phase", "message": "applying"})
        deadline = time.time() + self.delay
        while time.time() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.time())))
            send({"type": "heartbeat"})
        outcome = apply(document, lambda line: send({"type": "log", "message": line}))
        with self.lock:
            self.answers[key] = (200, outcome)
        if outcome["status"] == "completed":
            send({"type": "completed", "outputs": outcome.get("outputs", {}), "planResult": outcome.get("planResult")})
        else:
            send({"type": "failed", "error": outcome["error"]})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        print("provisioner: " + format % args, file=sys.stderr, flush=True)


def main():
    global STATE_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve", "exec"])
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--delay", type=float, default=float(os.environ.get("CONVERGE_EXAMPLE_DELAY", "1")))
    parser.add_argument("--state-dir", default=STATE_DIR)
    args = parser.parse_args()
    STATE_DIR = args.state_dir
    if args.mode == "exec":
        return run_exec(args.delay)
    Handler.delay = args.delay
    Handler.secret = os.environ.get("CONVERGE_EXAMPLE_WEBHOOK_SECRET")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"example provisioner listening on 127.0.0.1:{args.port} (delay {args.delay}s)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
