#!/usr/bin/env python3
"""A loopback fake Kubernetes API server for the echo-sandbox specs.

Real kubectl talks to it through a kubeconfig the specs write. It serves
/version (the minor given), discovery, pods create/get/list/watch (also
streaming lists: sendInitialEvents, as kubectl 1.35 asks)/delete,
pod logs, and attach and exec over WebSocket (v5.channel.k8s.io, or v4
without the close channel: channel 0 stdin, 1 stdout, 2 stderr, 3 status,
255 close; exec_pod below). A created pod "runs" its
container's command as a local process (output written before an attach is
lost, as on a real node), in a fresh directory of its own when the
container has a workingDir (an emptyDir there, removed with the pod).
Every pod body it receives is recorded.

What a pod does is chosen by its image name:
  ...fake-oom...        killed as OOMKilled (exit 137) once it has run
  ...fake-pending...    stays Pending, unschedulable, forever
  ...fake-pull-error... never starts: ErrImagePull, then ImagePullBackOff
and by options: --forbid NS (403 on creating pods in NS), --hang-delete
(DELETE never answers), --fail-delete N (the first N DELETEs answer 500),
--fail-get (a GET of one pod answers 500), --drop-attach (the attach
connection is cut, without a close frame, after the first stdout output:
with the handshake, a piece of the stdout mark), --drop-attach-at TEXT (cut
so once the stdout relayed holds TEXT), --log-stdout-first (a pod's log
holds its stdout before its stderr, as a runtime whose stdout reader ran
ahead writes it), --log-stderr-behind (the same after its stderr reader read
one byte: the log holds that byte, its stdout, then the rest of its stderr),
--deny-attach (403 on pods/attach), --fail-create N (the first N pod
creates answer 503), --slow-create SECONDS (a create takes that long), --hang-after-create (once a pod is
created, no request but the control endpoints is ever answered),
--deny "VERB RESOURCE" (kubectl auth can-i says no),
--network-policy (a NetworkPolicy selecting echo-sandbox.io/network=none
exists), --busybox PATH (a pod's /bin/sh is that BusyBox, with only its
applets on PATH: an Alpine-like image). activeDeadlineSeconds is enforced (DeadlineExceeded).

More options (a block of their own below): --fail-create-code CODE (what
the failing creates of --fail-create answer: 500, 503 or 429 without
Retry-After), --failing-tool NAME (that tool, first on a pod's PATH, says
"Read-only file system" and fails; not with --busybox, whose shell runs its
own applets), --pid-namespace (a pod's command is pid 1 of a pid namespace
of its own, with its own /proc, as on a node; needs root), --no-setrlimit
HELPER (a pod's command runs where setting a resource limit fails with
EPERM, as under a security module that denies it: HELPER is
esb-spec-helper).

For doctor --prove --k8s (blocks of their own below): a namespace's GET
answers one made or one a pod was created in, with the labels of --namespace-label [NS:]KEY=VALUE (403
with --forbid-namespaces), and one labelled
pod-security.kubernetes.io/enforce=restricted refuses the pods that level
refuses; a create with dryRun is answered and makes nothing; the
Service kubernetes in default (clusterIP 127.0.0.1, the fake's port); a
pod's status.podIP (127.0.0.1) once it runs; --evict-storage (the kubelet
evicts a pod whose working dir outgrows its ephemeral storage).

Control endpoints for the specs: GET /_fake/pods (pods present now),
GET /_fake/received (every pod body received), GET /_fake/requests (a log,
with a line "CREATED NS/NAME" when a create is done),
POST /_fake/evict/NAME (the kubelet evicts the pod: its container is
killed, the pod Failed with reason Evicted), POST /_fake/delete/NAME (a
delete from outside, as a node drain does), POST /_fake/outage/SECONDS (the
API server is unreachable that long: attach connections are cut, and every
request but the control endpoints gets its connection closed unanswered).

Per-request latency (a slow API server): --latency SECONDS delays every API
request (not the control endpoints) that long before it is answered
(--latency-after-create SECONDS: once a pod exists, the create quick);
POST /_fake/latency/SECONDS sets it while the server runs, for the requests
that arrive from then on (one already waiting keeps its own delay).

Warm pools (a block of their own below, warm_*): --start-delay SECONDS
(a created pod stays Pending that long), PATCH and PUT of pods with
resourceVersion preconditions (409 Conflict on a stale one), label selectors
(=, !=, !key, in, notin), --request-log [PATH] (each API request and its
answer as a JSON line), --quota-pods N (403 exceeded quota past N pods);
POST /_fake/start-delay/SECONDS, /_fake/quota-pods/N, /_fake/mark/TEXT.

--tls CERT KEY: the API over HTTPS too, on a port of its own written to
PORT_FILE.tls (--tls-client-ca CA: a client certificate of CA is required
there).

The server writes its port to --port-file and runs until killed.
`fake_kube.py request PORT METHOD PATH [BODY [CONTENT-TYPE]]` prints the
code and the body of any request to a running server.
"""
import argparse
import base64
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

state_lock = threading.Condition()
pods = {}           # (namespace, name) -> Pod
received = []       # pod bodies as received
requests_log = []
resource_version = [1]
outage_until = [0.0]   # time.time() until which the API server is unreachable
options = None
busybox_dir = [None]   # with --busybox: a directory of its applets, the pods' PATH
failing_dir = [None]   # with --failing-tool: a directory of tools that fail, first on the pods' PATH
latency = [0.0]        # ---- per-request latency: seconds before each API request is answered


# ---- what kubectl asks, to compare the minors of the matrix ----
# With $ESB_FAKE_TRACE set (a file), each server appends a line for itself
# ("PID MINOR START OPTIONS") and one for each API request ("PID MINOR METHOD
# PATH HEADERS"; pod names, resource versions and timeouts made alike; the
# headers that say how kubectl asks). spec/support/kubectl_traces.py
# compares what each minor asked in each case.
TRACE_HEADERS = ("Accept", "Content-Type", "Sec-WebSocket-Protocol")


def trace(line):
    path = os.environ.get("ESB_FAKE_TRACE")
    if path:
        with open(path, "a") as f:
            f.write("%d %d %s\n" % (os.getpid(), options.minor, line))


def trace_request(handler, method):
    if not os.environ.get("ESB_FAKE_TRACE") or handler.path.startswith("/_fake/"):
        return
    path = re.sub(r"echo-sandbox-[0-9a-f]{6,}", "POD", handler.path)
    path = re.sub(r"(resourceVersion|timeoutSeconds)=[0-9]+", r"\1=N", path)
    path = re.sub(r"timeout=[0-9.]+(m[0-9]+)?s", "timeout=T", path)
    headers = " ".join("%s=%s" % (k, handler.headers[k]) for k in TRACE_HEADERS if handler.headers.get(k))
    trace("%s %s %s" % (method, path, headers))


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def next_rv():
    resource_version[0] += 1
    return str(resource_version[0])


class Pod:
    def __init__(self, obj):
        self.obj = obj
        self.proc = None
        self.output = []          # everything the container wrote, for /log
        self.attached = None      # the attach session's sender, once attached
        self.attach_sock = None   # and its socket
        self.exited = threading.Event()
        self.deleted = False
        self.workdir = None       # the container's workingDir: an emptyDir of its own
        self.restarts = 0         # the container's restartCount (life_* below)
        self.terminating = False  # a graceful delete is under way (life_* below)
        self.env = None           # the container's environment (exec_* below)
        self.execs = []           # its exec'd processes (exec_* below)
        self.starting = False     # Pending for --start-delay (warm_* below)
        self.started_at = None    # when its container started: the deadline counts from it

    @property
    def key(self):
        m = self.obj["metadata"]
        return (m["namespace"], m["name"])

    def container(self):
        return self.obj["spec"]["containers"][0]

    def waiting(self, reason, message):
        """The container waits and will not start by itself (image pull). Call with state_lock held."""
        self.set_status("Pending", {"waiting": {"reason": reason, "message": message}})

    def set_status(self, phase, state, reason=None, message=None, ready=False):
        """Changes the pod's status and wakes the watchers. Call with state_lock held.
        A Pending pod with a reason is unschedulable: it has no container statuses."""
        c = self.container()
        status = {
            "phase": phase,
            "conditions": [
                {"type": "PodScheduled", "status": "False" if phase == "Pending" and reason else "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [{
                "name": c["name"], "image": c["image"], "ready": ready, "restartCount": self.restarts,
                "state": state, "started": phase == "Running",
            }],
        }
        if phase == "Pending" and reason:
            status["conditions"][0].update({"reason": reason, "message": message})
            del status["containerStatuses"]
        elif reason:
            status["reason"] = reason
            status["message"] = message
        pod_ip(status)
        self.obj["status"] = status
        self.obj["metadata"]["resourceVersion"] = next_rv()
        state_lock.notify_all()

    def start(self):
        with state_lock:
            if self.deleted or self.obj["status"]["phase"] != "Pending":
                return  # deleted or evicted before its container started
        c = self.container()
        argv = list(c.get("command", [])) + list(c.get("args", []))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for e in c.get("env", []):
            env[e["name"]] = e.get("value", "")
        env.setdefault("HOSTNAME", self.obj["metadata"]["name"])  # as the kubelet sets it: the pod's name
        if options.busybox and argv[:1] == ["/bin/sh"]:
            # an image whose shell and tools are BusyBox's, as Alpine's are
            argv = [options.busybox, "sh"] + argv[1:]
            env["PATH"] = busybox_dir[0]
        if failing_dir[0]:  # an image whose tool fails (--failing-tool)
            env["PATH"] = failing_dir[0] + ":" + env["PATH"]
        # ---- a pod's own pid namespace (--pid-namespace) ----
        # The container's first process is pid 1 of a namespace of its own,
        # with its own /proc, as on a node: what it kills with kill -1 is
        # the pod's and nothing else.
        if options.pid_namespace:
            argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + argv
        # ---- end of a pod's own pid namespace ----
        # ---- a node that denies setting resource limits (--no-setrlimit HELPER) ----
        if options.no_setrlimit:
            argv = [os.path.abspath(options.no_setrlimit), "no-setrlimit"] + argv
        # ---- end of a node that denies setting resource limits ----
        if c.get("workingDir"):
            # a fresh, empty directory, as the kubelet mounts an emptyDir there
            self.workdir = tempfile.mkdtemp(prefix="esb-fake-pod.")
        self.env = dict(env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True,
                                     cwd=self.workdir)
        with state_lock:
            gone = self.deleted
            if not gone:
                self.started_at = time.time()
                self.set_status("Running", {"running": {"startedAt": now()}}, ready=True)
        if gone:  # deleted while its process started: it goes with the pod
            self.kill()
            self.proc.wait()
            return
        for fd, channel in ((self.proc.stdout, 1), (self.proc.stderr, 2)):
            threading.Thread(target=self.pump, args=(fd, channel), daemon=True).start()
        threading.Thread(target=self.wait, daemon=True).start()
        if options.evict_storage:
            threading.Thread(target=storage_watch, args=(self,), daemon=True).start()
        deadline = self.obj["spec"].get("activeDeadlineSeconds")
        if deadline:
            threading.Timer(float(deadline), self.deadline_exceeded, args=(deadline,)).start()

    def pump(self, fd, channel):
        while True:
            data = os.read(fd.fileno(), 65536)
            if not data:
                break
            with state_lock:
                self.output.append((channel, data))
                sender = self.attached
                life_output(self)
            if sender:
                sender(channel, data)

    def wait(self):
        code = self.proc.wait()
        if not self.deleted:  # a delete's kill() ends the exec'd processes itself
            exec_container_ended(self)
        time.sleep(0.05)  # let the pumps hand over the last output
        with state_lock:
            if life_container_exited(self, code):
                return
            if self.deleted or self.obj["status"]["phase"] != "Running":
                self.exited.set()
                return
            image = self.container()["image"]
            if "fake-oom" in image:
                term = {"exitCode": 137, "reason": "OOMKilled", "finishedAt": now()}
                self.set_status("Failed", {"terminated": term})
            else:
                term = {"exitCode": code if code >= 0 else 128 - code,
                        "reason": "Completed" if code == 0 else "Error", "finishedAt": now()}
                self.set_status("Succeeded" if code == 0 else "Failed", {"terminated": term})
        self.exited.set()

    def deadline_exceeded(self, armed):
        with state_lock:
            if self.deleted or self.obj["status"]["phase"] != "Running" or \
                    self.obj["spec"].get("activeDeadlineSeconds") != armed:
                return  # or armed anew, lowered by an update (warm_apply)
            self.kill()
            term = {"exitCode": 137, "reason": "Error", "finishedAt": now()}
            self.set_status("Failed", {"terminated": term}, reason="DeadlineExceeded",
                            message="Pod was active on the node longer than the specified deadline")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        exec_container_ended(self)
        if self.workdir:  # the pod's emptyDir goes with it
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


# ---- how a create fails (--fail-create N, --fail-create-code CODE) ----
# The answers a create that the API server may take later gets: the engine
# tries each again, and must send the program's stdin whole every time.
FAILED_CREATE = {
    500: (500, "InternalError", "Internal error occurred: etcdserver: leader changed"),
    503: (503, "ServiceUnavailable", "the server is currently unable to handle the request"),
    429: (429, "TooManyRequests", "the server has received too many requests and has asked us to try again later"),
}
# ---- end of how a create fails ----


def take_failure(option):
    """Whether this request fails: the option counts the failures still to come."""
    with state_lock:
        left = getattr(options, option)
        setattr(options, option, max(left - 1, 0))
    return left > 0


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


DISCOVERY_V1 = {
    "kind": "APIResourceList", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
         "shortNames": ["po"]},
        {"name": "pods/attach", "singularName": "", "namespaced": True, "kind": "PodAttachOptions",
         "verbs": ["create", "get"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]},
        {"name": "resourcequotas", "singularName": "resourcequota", "namespaced": True, "kind": "ResourceQuota",
         "verbs": ["get", "list"], "shortNames": ["quota"]},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["get", "list"], "shortNames": ["ns"]},
        # known, so that `kubectl apply --dry-run=client` of deploy/ maps them
        {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
         "verbs": ["get"], "shortNames": ["svc"]},
        {"name": "serviceaccounts", "singularName": "serviceaccount", "namespaced": True, "kind": "ServiceAccount",
         "verbs": ["get"], "shortNames": ["sa"]},
        {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
         "verbs": ["get"], "shortNames": ["cm"]},
    ],
}

# The kinds of deploy/ beyond the core ones (GET answers 404: none exists).
DISCOVERY_GROUPS = {
    "apps": [{"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
              "verbs": ["get"], "shortNames": ["deploy"]}],
    "rbac.authorization.k8s.io": [
        {"name": "roles", "singularName": "role", "namespaced": True, "kind": "Role", "verbs": ["get"]},
        {"name": "rolebindings", "singularName": "rolebinding", "namespaced": True, "kind": "RoleBinding",
         "verbs": ["get"]}],
}


DISCOVERY_NETWORKING = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "networking.k8s.io/v1",
    "resources": [{"name": "networkpolicies", "singularName": "networkpolicy", "namespaced": True,
                   "kind": "NetworkPolicy", "verbs": ["get", "list"], "shortNames": ["netpol"]}],
}

DISCOVERY_AUTHORIZATION = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1",
    "resources": [{"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
                   "namespaced": False, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        super().send_response(code, message)
        warm_log_answer(self, code)

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def route(self, method):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        with state_lock:
            requests_log.append("%s %s" % (method, self.path))
            warm_log_request(self, method, url)
            trace_request(self, method)
            hang = options.hang_after_create and pods and not url.path.startswith("/_fake/")
            down = time.time() < outage_until[0] and not url.path.startswith("/_fake/")
            # ---- per-request latency (--latency, POST /_fake/latency/SECONDS) ----
            delay = latency[0] if not url.path.startswith("/_fake/") else 0
            if options.latency_after_create and pods and not url.path.startswith("/_fake/"):
                delay = options.latency_after_create
        if delay:
            time.sleep(delay)
        if not url.path.startswith("/_fake/") and life_throttled(self):
            return
        if not url.path.startswith("/_fake/") and warm_refused_agent(self):
            return
        while hang:  # until the client gives up and the server is killed
            time.sleep(1)
        if down:  # unreachable: the connection ends unanswered
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if method == "GET" and url.path == "/version":
            minor = str(options.minor)
            return self.send_json(200, {"major": "1", "minor": minor, "gitVersion": "v1.%s.0" % minor,
                                        "platform": "linux/amd64"})
        if method == "GET" and url.path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": []})
        if method == "GET" and url.path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": g + "/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": g + "/v1", "version": "v1"}}
                for g in ("authorization.k8s.io", "networking.k8s.io") + tuple(DISCOVERY_GROUPS)]})
        if method == "GET" and parts[:1] == ["apis"] and len(parts) == 3 and parts[1] in DISCOVERY_GROUPS:
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": parts[1] + "/v1", "resources": DISCOVERY_GROUPS[parts[1]]})
        if method == "GET" and url.path == "/apis/networking.k8s.io/v1":
            return self.send_json(200, DISCOVERY_NETWORKING)
        if method == "GET" and url.path == "/apis/authorization.k8s.io/v1":
            return self.send_json(200, DISCOVERY_AUTHORIZATION)
        if method == "POST" and url.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            return self.access_review()
        if method == "GET" and parts[:3] == ["apis", "networking.k8s.io", "v1"] and parts[-1] == "networkpolicies":
            items = []
            if options.network_policy:
                items.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                              "metadata": {"name": "echo-sandbox-deny-all", "namespace": parts[4]},
                              "spec": {"podSelector": {"matchLabels": {"echo-sandbox.io/network": "none"}},
                                       "policyTypes": ["Ingress", "Egress"]}})
            return self.send_json(200, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList",
                                        "metadata": {"resourceVersion": "1"}, "items": items})
        if method == "GET" and url.path == "/api/v1":
            return self.send_json(200, DISCOVERY_V1)
        if url.path.startswith("/_fake/"):
            return self.control(parts[1])
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            ns = parts[3]
            name = parts[5] if len(parts) > 5 else None
            sub = parts[6] if len(parts) > 6 else None
            if name is None and method == "POST":
                return self.create(ns)
            if name is None and method == "GET":
                return self.watch(ns, q) if q.get("watch", ["false"])[0] in ("true", "1") else self.list(ns, q)
            if name and sub is None and method == "GET":
                return self.get(ns, name)
            if name and sub is None and method == "DELETE":
                return self.delete(ns, name)
            if name and sub is None and method in ("PATCH", "PUT"):
                return warm_update(self, ns, name, q)
            if name and sub == "attach":
                return self.attach(ns, name)
            if name and sub == "exec":
                return exec_pod(self, ns, name, q)
            if name and sub == "log" and method == "GET":
                return self.log(ns, name)
        if method == "GET" and parts[:2] == ["api", "v1"] and parts[2:3] == ["pods"]:
            return self.list(None, q)
        if method == "GET" and len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and \
                parts[4] == "resourcequotas":
            return warm_quotas(self, parts[3])
        if method == "GET" and parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (5, 6) and \
                parts[4] == "services":
            return service_route(self, parts[3], parts[5] if len(parts) == 6 else None)
        if options.forbid_namespaces and method == "GET" and parts[:3] == ["api", "v1", "namespaces"] and \
                len(parts) == 4:
            return namespace_forbidden(self, parts[3])
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            return namespace_route(self, method, parts[3] if len(parts) == 4 else None)
        self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")

    def control(self, what):
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        if self.command == "GET" and what == "procs":
            return life_procs(self)
        if self.command == "POST" and len(parts) == 3 and what in LIFE_CONTROLS:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return LIFE_CONTROLS[what](self, parts[2])
        if self.command == "POST" and len(parts) == 3 and what in WARM_CONTROLS:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return WARM_CONTROLS[what](self, parts[2])
        if self.command == "POST" and what == "outage" and len(parts) == 3:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state_lock:
                outage_until[0] = time.time() + float(parts[2])
                for pod in pods.values():
                    if pod.attach_sock:
                        pod.attached = None
                        try:
                            pod.attach_sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
            return self.send_json(200, {"until": outage_until[0]})
        # ---- per-request latency, set while the server runs
        if self.command == "POST" and what == "latency" and len(parts) == 3:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state_lock:
                latency[0] = float(parts[2])
            return self.send_json(200, {"latency": latency[0]})
        if self.command == "POST" and what in ("evict", "delete") and len(parts) == 3:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state_lock:
                found = [p for p in pods.values() if p.obj["metadata"]["name"] == parts[2]]
                for pod in found:
                    pod.kill()
                    if what == "delete":
                        pod.deleted = True
                        del pods[pod.key]
                    else:
                        term = {"exitCode": 137, "reason": "Error", "finishedAt": now()}
                        pod.set_status("Failed", {"terminated": term}, reason="Evicted",
                                       message="The node was low on resource: memory. Threshold quantity: "
                                               "100Mi, available: 91Mi.")
                state_lock.notify_all()
            return self.send_json(200 if found else 404, {"found": len(found)})
        with state_lock:
            if what == "pods":
                return self.send_json(200, [p.obj for p in pods.values()])
            if what == "received":
                return self.send_json(200, received)
            if what == "requests":
                return self.send_json(200, requests_log)
        self.send_json(404, {})

    def access_review(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "json" in self.headers.get("Content-Type", "json"):
            attrs = json.loads(raw).get("spec", {}).get("resourceAttributes", {})
            verb, resource, sub = attrs.get("verb"), attrs.get("resource"), attrs.get("subresource")
        else:
            # newer kubectl sends protobuf: its strings stand in the bytes as they are
            words = set(raw.replace(b"\x00", b" ").split())
            words = {w.strip(b"\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x12\x1a\x22\x2a\x32\x3a").decode("latin-1")
                     for w in words}
            verb = next((v for v in ("create", "get", "list", "delete", "watch", "patch") if any(v in w for w in words)),
                        None)
            resource = next((r for r in ("pods", "secrets") if any(r in w for w in words)), None)
            sub = "attach" if any("attach" in w for w in words) else None
        what = "%s %s%s" % (verb, resource, "/" + sub if sub else "")
        self.send_json(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                             "metadata": {}, "spec": {},
                             "status": {"allowed": what not in options.deny}})

    def create(self, ns):
        obj = self.body()
        time.sleep(options.slow_create)
        with state_lock:
            received.append(copy.deepcopy(obj))
        if take_failure("fail_create"):
            return self.send_json(options.fail_create_code, status_obj(*FAILED_CREATE[options.fail_create_code]))
        if life_create_refused(self, ns):
            return
        if ns in options.forbid:
            msg = 'pods is forbidden: User "system:serviceaccount:%s:echo-sandbox" cannot create ' \
                  'resource "pods" in API group "" in the namespace "%s"' % (ns, ns)
            return self.send_json(403, status_obj(403, "Forbidden", msg))
        meta = obj.setdefault("metadata", {})
        if admission_refused(self, ns, obj):
            return
        if warm_quota_refused(self, ns, meta.get("name") or meta.get("generateName", "")) or \
                not warm_named(self, meta):
            return
        meta.update({"namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now()})
        if options.mutate_restart_policy:  # a site's mutating admission webhook
            obj.setdefault("spec", {})["restartPolicy"] = options.mutate_restart_policy
        with state_lock:
            if (ns, meta["name"]) in pods:
                return self.send_json(409, status_obj(409, "AlreadyExists",
                                                      'pods "%s" already exists' % meta["name"]))
            pod = Pod(obj)
            pods[pod.key] = pod
            requests_log.append("CREATED %s/%s" % pod.key)
            image = pod.container()["image"]
            if "fake-pending" in image:
                pod.set_status("Pending", {"waiting": {"reason": "Pending"}}, reason="Unschedulable",
                               message="0/1 nodes are available: 1 Insufficient cpu.")
            else:
                pod.set_status("Pending", {"waiting": {"reason": "ContainerCreating"}})
            if "fake-pull-error" not in image and "fake-pending" not in image:
                warm_start(pod)
            created = copy.deepcopy(pod.obj)
            life_created(pod)
        if "fake-pull-error" in image:
            threading.Timer(0.05, self.pull_fails, args=(pod, image)).start()
        if not life_cut_answer(self, 201, created):
            self.send_json(201, created)

    @staticmethod
    def pull_fails(pod, image):
        error = 'failed to pull and unpack image "docker.io/library/%s": failed to resolve reference ' \
                '"docker.io/library/%s": not found' % (image, image)
        with state_lock:
            if not pod.deleted:
                pod.waiting("ErrImagePull", 'rpc error: code = NotFound desc = %s' % error)
        time.sleep(0.3)
        with state_lock:
            if not pod.deleted:
                pod.waiting("ImagePullBackOff", 'Back-off pulling image "%s"' % image)

    def get(self, ns, name):
        if options.fail_get:
            return self.send_json(500, status_obj(500, "InternalError",
                                                  "Internal error occurred: etcdserver: leader changed"))
        with state_lock:
            pod = pods.get((ns, name))
            obj = copy.deepcopy(pod.obj) if pod else None
        if obj is None:
            return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
        self.send_json(200, obj)

    def selectors(self, q):
        """The list's or watch's label and field selectors (warm_* below), or None once answered 400."""
        try:
            return (parse_label_selector(q.get("labelSelector", [""])[0]),
                    parse_field_selector(q.get("fieldSelector", [""])[0]))
        except ValueError as e:
            self.send_json(400, status_obj(400, "BadRequest", str(e)))
            return None

    @staticmethod
    def matching(ns, selectors):
        labels, fields = selectors
        return [pod for pod in pods.values()
                if (not ns or pod.key[0] == ns) and field_selected(pod.obj, fields) and
                label_selected(pod.obj["metadata"].get("labels") or {}, labels)]

    def list(self, ns, q):
        selectors = self.selectors(q)
        if selectors is None:
            return
        with state_lock:
            items = [copy.deepcopy(p.obj) for p in self.matching(ns, selectors)]
            rv = str(resource_version[0])
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv},
                             "items": items})

    def watch(self, ns, q):
        selectors = self.selectors(q)
        if selectors is None:
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if life_watch_expired(self, q):
            return
        timeout = float(q.get("timeoutSeconds", ["300"])[0])
        sent = 0
        end = time.time() + timeout
        seen = {}
        since = int(q.get("resourceVersion", ["0"])[0] or 0)
        # A streaming list (kubectl 1.35's WatchListClient): every pod as
        # ADDED, then a bookmark that marks the end of the initial events.
        initial = q.get("sendInitialEvents", ["false"])[0] == "true"
        if initial:
            since = 0
        try:
            while time.time() < end:
                events = []
                with state_lock:
                    current = {p.key: p for p in self.matching(ns, selectors)}
                    for key, pod in current.items():
                        rv = pod.obj["metadata"]["resourceVersion"]
                        if seen.get(key) != rv and int(rv) > since:
                            events.append({"type": "ADDED" if key not in seen else "MODIFIED",
                                           "object": copy.deepcopy(pod.obj)})
                        seen[key] = rv
                    for key in [k for k in seen if k not in current]:
                        left = pods.get(key)  # there still, no longer selected: as it is now
                        events.append({"type": "DELETED", "object": copy.deepcopy(left.obj) if left else {
                            "kind": "Pod", "apiVersion": "v1",
                            "metadata": {"name": key[1], "namespace": key[0], "resourceVersion": next_rv()}}})
                        del seen[key]
                    if initial:
                        events.append({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {
                            "resourceVersion": str(resource_version[0]),
                            "annotations": {"k8s.io/initial-events-end": "true"}}}})
                        initial = False
                    elif not events:
                        state_lock.wait(0.5)
                for ev in events:
                    data = (json.dumps(ev) + "\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    sent += 1
                if options.watch_cut and sent >= options.watch_cut:
                    break  # (life_options) the stream ends, cleanly
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def delete(self, ns, name):
        delete_options = self.body()  # read it, or it spoils the kept-alive connection
        with state_lock:
            pod = pods.get((ns, name))
            refused = pod and warm_delete_refused(pod, delete_options)
        if refused:
            return self.send_json(*refused)
        if options.kubelet_grace:
            return life_delete(self, ns, name, delete_options)
        if options.hang_delete:
            while True:  # until the client gives up and the server is killed
                time.sleep(1)
        if take_failure("fail_delete"):
            return self.send_json(500, status_obj(500, "InternalError",
                                                  "Internal error occurred: etcdserver: request timed out"))
        with state_lock:
            pod = pods.pop((ns, name), None)
            if pod:
                pod.deleted = True
                state_lock.notify_all()
        if pod:  # its processes and its dir: outside the lock, which every request takes
            pod.kill()
        if not pod:
            return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
        self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                             "details": {"name": name, "kind": "pods"}})

    def log(self, ns, name):
        with state_lock:
            pod = pods.get((ns, name))
        if warm_start_refused(self, pod, log=True):
            return
        with state_lock:
            # --log-stdout-first: a runtime whose stdout reader ran ahead of
            # its stderr reader (one reader per stream, as containerd's):
            # the log holds each stream in order, stdout's first
            chunks = sorted(pod.output, key=lambda c: c[0]) if pod and options.log_stdout_first \
                else (pod.output if pod else None)
            data = b"".join(d for _, d in chunks) if pod else None
            if pod and options.log_stderr_behind:
                # --log-stderr-behind: its stderr reader had read the first
                # byte (of the start mark, which dd writes byte by byte)
                # when the stdout reader ran ahead with the rest
                out = b"".join(d for c, d in pod.output if c == 1)
                err = b"".join(d for c, d in pod.output if c == 2)
                data = err[:1] + out + err[1:]
        if data is None:
            return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ---- attach over WebSocket ----

    def attach(self, ns, name):
        if options.deny_attach:
            msg = 'pods "%s" is forbidden: User "system:serviceaccount:%s:echo-sandbox" cannot create resource ' \
                  '"pods/attach" in API group "" in the namespace "%s"' % (name, ns, ns)
            return self.send_json(403, status_obj(403, "Forbidden", msg))
        with state_lock:
            pod = pods.get((ns, name))
        if warm_start_refused(self, pod):
            return
        if not pod or pod.proc is None:
            return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
        if not ws_upgrade(self):
            return
        sock = self.connection
        send_frame = ws_sender(sock)

        relayed = bytearray()  # the stdout this attach relayed

        def sender(channel, data):
            if options.fragment_exec_frames:
                send_frame.raw(ws_fragments(channel, data))
            else:
                send_frame(0x2, bytes([channel]) + data)
            if channel == 1:
                relayed.extend(data)
            cut = options.drop_attach or (options.drop_attach_at and options.drop_attach_at.encode() in relayed)
            if cut and channel == 1:
                with state_lock:
                    pod.attached = None
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        with state_lock:
            pod.attached = sender
            pod.attach_sock = sock
        reader = threading.Thread(target=self.read_client, args=(pod.proc, send_frame), daemon=True)
        reader.start()
        pod.exited.wait()
        time.sleep(0.05)
        send_frame(0x8, struct.pack(">H", 1000))
        self.close_connection = True

    def read_client(self, proc, send_frame):
        rfile = self.rfile
        try:
            while True:
                head = rfile.read(2)
                if len(head) < 2:
                    break
                opcode = head[0] & 0x0F
                n = head[1] & 0x7F
                if n == 126:
                    n = struct.unpack(">H", rfile.read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", rfile.read(8))[0]
                mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(n)))
                if opcode == 0x8:
                    break
                if opcode == 0x9:
                    send_frame(0xA, data)
                    continue
                if opcode == 0xA or not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == 0 and payload:
                    proc.stdin.write(payload)
                    proc.stdin.flush()
                elif channel == 255 and payload[:1] == b"\0":
                    proc.stdin.close()
        except (OSError, ValueError):
            pass
        # stdinOnce: the container's stdin ends with the attach session
        try:
            proc.stdin.close()
        except (OSError, ValueError):
            pass


# ---- the pod's life: graceful deletes, restarts, lost nodes, throttling ----
# Faults of a cluster's everyday life, each a switch (options in main(), the
# control endpoints in LIFE_CONTROLS):
#   --kubelet-grace     a DELETE is graceful, as the kubelet's: deletionTimestamp
#                       is set, SIGTERM goes to the container a moment later,
#                       SIGKILL after the grace (the DeleteOptions', else the
#                       pod's terminationGracePeriodSeconds, else 30 s); the pod
#                       goes once its container has exited and it has no
#                       finalizers. The log says "GRACE NS/NAME SECONDS",
#                       "SIGKILL NS/NAME" and "GONE NS/NAME".
#   --finalizer         every pod is created with a finalizer, which
#                       POST /_fake/finalize/NAME removes
#   --throttle N        the next N API requests answer 429, with
#                       Retry-After: --retry-after SECONDS (none when < 0)
#   --quota             a pod create answers 403 exceeded quota
#   --cut-create        the 201 answer of a pod create is cut mid-body (the
#                       pod exists); --foreign-pod: and the pod then carries
#                       another instance's label
#   --watch-cut N       a watch stream ends (cleanly) after N events
#   --watch-expired N   the first N watches from a resourceVersion answer
#                       410 Expired
#   --drain-at-output   a pod is drained (a graceful delete from outside, with
#                       its grace) once its container first writes: well
#                       before a watch that starts a second into the run
#   --mutate-restart-policy POLICY
#                       a create's pod gets that restartPolicy, as a site's
#                       mutating admission webhook may set it
# Control: GET /_fake/procs (the pods whose container processes are alive,
# deleted pods' too), POST /_fake/drain/NAME (a graceful delete from outside, with the
# pod's grace), /_fake/unknown/NAME (the node is lost: phase Unknown),
# /_fake/notready/NAME (the node is NotReady: Ready=False, the container
# silent), /_fake/restart/NAME (the kubelet restarts the container), and the
# image name ...fake-crashloop... exits 1 at once and, where restartPolicy is
# not Never, the kubelet backs off: CrashLoopBackOff.

def life_log(what, pod):
    requests_log.append("%s %s/%s" % ((what,) + pod.key))


def life_grace(pod, delete_options):
    grace = (delete_options or {}).get("gracePeriodSeconds")
    if grace is None:
        grace = pod.obj["spec"].get("terminationGracePeriodSeconds")
    return 30 if grace is None else int(grace)


def life_signal(pod, sig, what):
    with state_lock:
        alive = pod.proc and pod.proc.poll() is None and not pod.deleted
        if alive and sig == signal.SIGKILL:
            life_log(what, pod)
    if alive:
        try:
            os.killpg(pod.proc.pid, sig)
        except ProcessLookupError:
            pass


def life_remove(pod):
    """The pod leaves the API server. Call with state_lock held."""
    if pod.deleted or pods.get(pod.key) is not pod:
        return
    if pod.obj["metadata"].get("finalizers"):
        return  # until /_fake/finalize
    pods.pop(pod.key)
    pod.deleted = True
    life_log("GONE", pod)
    pod.kill()
    state_lock.notify_all()


def life_terminate(pod, grace):
    """A graceful delete. Call with state_lock held."""
    meta = pod.obj["metadata"]
    if pod.terminating:
        return
    pod.terminating = True
    meta["deletionTimestamp"] = now()
    meta["deletionGracePeriodSeconds"] = grace
    meta["resourceVersion"] = next_rv()
    requests_log.append("GRACE %s/%s %d" % (pod.key + (grace,)))
    state_lock.notify_all()
    if not pod.proc or pod.proc.poll() is not None:
        life_remove(pod)
        return
    # the kubelet learns of the delete through its own watch, a moment later
    threading.Timer(0.1, life_signal, args=(pod, signal.SIGTERM, "SIGTERM")).start()
    threading.Timer(0.1 + grace, life_signal, args=(pod, signal.SIGKILL, "SIGKILL")).start()


def life_container_exited(pod, code):
    """From Pod.wait, with state_lock held: whether the life_* faults took the exit."""
    if pod.terminating and not pod.deleted:
        if pod.obj["status"]["phase"] == "Running":
            term = {"exitCode": code if code >= 0 else 128 - code,
                    "reason": "Completed" if code == 0 else "Error", "finishedAt": now()}
            pod.set_status("Succeeded" if code == 0 else "Failed", {"terminated": term})
        pod.exited.set()
        life_remove(pod)
        return True
    if pod.deleted or pod.obj["spec"].get("restartPolicy", "Always") == "Never":
        return False
    if pod.obj["status"]["phase"] != "Running":
        return False
    # restartPolicy Always or OnFailure: the kubelet restarts it, backing off
    pod.restarts += 1
    pod.set_status("Running", {"waiting": {"reason": "CrashLoopBackOff", "message":
                   "back-off 10s restarting failed container=%s pod=%s" % (pod.container()["name"], pod.key[1])}})
    pod.obj["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"exitCode": code, "reason": "Error" if code else "Completed", "finishedAt": now()}}
    pod.exited.set()
    return True


def life_delete(handler, ns, name, delete_options):
    with state_lock:
        pod = pods.get((ns, name))
        if pod:
            life_terminate(pod, life_grace(pod, delete_options))
            obj = copy.deepcopy(pod.obj)
    if not pod:
        return handler.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
    handler.send_json(200, obj)


def life_throttled(handler):
    if not take_failure("throttle"):
        return False
    if handler.command in ("POST", "DELETE", "PUT", "PATCH"):
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    body = json.dumps(status_obj(429, "TooManyRequests", "Too many requests, please try again later.")).encode()
    handler.send_response(429)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    if options.retry_after >= 0:
        handler.send_header("Retry-After", str(options.retry_after))
    handler.end_headers()
    handler.wfile.write(body)
    return True


def life_create_refused(handler, ns):
    if not options.quota:
        return False
    msg = 'pods "x" is forbidden: exceeded quota: compute-resources, requested: limits.memory=256Mi, ' \
          'used: limits.memory=1Gi, limited: limits.memory=1Gi'
    handler.send_json(403, status_obj(403, "Forbidden", msg))
    return True


life_every_pod = []  # every pod created, deleted ones too: their processes


def life_procs(handler):
    """GET /_fake/procs: the pods whose container processes are alive, deleted pods too."""
    with state_lock:
        alive = ["%s/%s" % p.key for p in life_every_pod if p.proc and p.proc.poll() is None or
                 any(e.poll() is None for e in p.execs) or p.execs and exec_marked(p)]
    handler.send_json(200, alive)


def life_output(pod):
    """The container wrote, with state_lock held."""
    if options.drain_at_output and not pod.terminating:
        life_terminate(pod, life_grace(pod, None))


def life_created(pod):
    """A pod just created, with state_lock held."""
    life_every_pod.append(pod)
    meta = pod.obj["metadata"]
    if options.finalizer:
        meta["finalizers"] = ["fake.example.com/hold"]
    if options.cut_create and options.foreign_pod:
        meta.setdefault("labels", {})["echo-sandbox.io/instance"] = "someone-else"


def life_cut_answer(handler, code, obj):
    """The answer's headers and half its body, then the connection ends."""
    if not take_failure("cut_create"):
        return False
    body = json.dumps(obj).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[:len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return True


def life_watch_expired(handler, q):
    """The first --watch-expired watches from a resourceVersion: 410 Expired."""
    rv = q.get("resourceVersion", [""])[0]
    if rv in ("", "0") or q.get("sendInitialEvents", ["false"])[0] == "true" or not take_failure("watch_expired"):
        return False
    ev = {"type": "ERROR", "object": status_obj(410, "Expired", "too old resource version: %s (%s)" %
                                                (rv, resource_version[0]))}
    data = (json.dumps(ev) + "\n").encode()
    handler.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    handler.close_connection = True
    return True


def life_control_pod(name, change):
    with state_lock:
        found = [p for p in pods.values() if p.obj["metadata"]["name"] == name]
        for pod in found:
            change(pod)
        state_lock.notify_all()
    return found


def life_unknown(pod):
    pod.set_status("Unknown", {"running": {"startedAt": now()}}, reason="NodeLost",
                   message="Node fake-node which was running pod %s is unresponsive" % pod.key[1])


def life_notready(pod):
    pod.set_status("Running", {"running": {"startedAt": now()}})
    pod.obj["status"]["conditions"][1].update({"reason": "NodeNotReady",
                                               "message": "the node fake-node is not ready"})
    pod.attached = None  # what the container writes no longer arrives


def life_restart(pod):
    pod.restarts += 1
    pod.set_status("Running", {"running": {"startedAt": now()}}, ready=True)
    pod.obj["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now()}}


def life_finalize(pod):
    pod.obj["metadata"].pop("finalizers", None)
    pod.obj["metadata"]["resourceVersion"] = next_rv()
    if pod.terminating and (not pod.proc or pod.proc.poll() is not None):
        life_remove(pod)


LIFE_CONTROLS = {
    "drain": lambda h, name: h.send_json(200, {"found": len(life_control_pod(
        name, lambda pod: life_terminate(pod, life_grace(pod, None))))}),
    "unknown": lambda h, name: h.send_json(200, {"found": len(life_control_pod(name, life_unknown))}),
    "notready": lambda h, name: h.send_json(200, {"found": len(life_control_pod(name, life_notready))}),
    "restart": lambda h, name: h.send_json(200, {"found": len(life_control_pod(name, life_restart))}),
    "finalize": lambda h, name: h.send_json(200, {"found": len(life_control_pod(name, life_finalize))}),
}


def life_options(ap):
    ap.add_argument("--kubelet-grace", action="store_true", help="deletes are graceful, as the kubelet's")
    ap.add_argument("--finalizer", action="store_true", help="pods are created with a finalizer")
    ap.add_argument("--throttle", type=int, default=0, help="the next N API requests answer 429")
    ap.add_argument("--retry-after", type=int, default=1, help="the 429s' Retry-After (none when < 0)")
    ap.add_argument("--quota", action="store_true", help="a pod create answers 403 exceeded quota")
    ap.add_argument("--cut-create", type=int, default=0, help="the first N creates' answers are cut mid-body")
    ap.add_argument("--foreign-pod", action="store_true", help="a cut create's pod is another instance's")
    ap.add_argument("--watch-cut", type=int, default=0, help="watch streams end after N events")
    ap.add_argument("--watch-expired", type=int, default=0, help="the first N watches answer 410 Expired")
    ap.add_argument("--drain-at-output", action="store_true", help="drain a pod once its container writes")
    ap.add_argument("--mutate-restart-policy", help="creates get this restartPolicy, as from a mutating webhook")


# ---- warm pools: pods that take time to start, changes under a
# resourceVersion, label selectors, a request log, a quota of pods ----
# What a pool of pods kept warm meets on a cluster (options in warm_options;
# each also read from its environment variable, for a server a script
# starts; the control endpoints in WARM_CONTROLS):
#   --start-delay SECONDS ($ESB_FAKE_START_DELAY; default 0, as before)
#                       a created pod stays Pending that long: unscheduled
#                       (no conditions, no nodeName) for the first half, then
#                       scheduled (nodeName fake-node, ContainerCreating)
#                       until its container starts, Running and Ready. Exec
#                       and attach meanwhile answer 400, as the API server
#                       ("pod NAME does not have a host assigned") and the
#                       kubelet ('container not found ("C")') answer them;
#                       its log is empty, then 400 "is waiting to start".
#                       POST /_fake/start-delay/SECONDS: for the pods created
#                       from then on; POST /_fake/schedule/NAME, and
#                       /_fake/start/NAME: that step now, whatever the delay
#                       (never for a pod deleted, evicted or started).
#   PATCH and PUT of a pod (merge and strategic merge patches, JSON patches;
#                       kubectl label, annotate, patch, replace): labels,
#                       annotations, finalizers and activeDeadlineSeconds (set,
#                       or lowered: the deadline is armed anew) change; any
#                       other change of the spec answers 422 Invalid. A body
#                       whose metadata.resourceVersion is not the pod's
#                       current one answers 409 Conflict (a PUT must carry
#                       one: 422 without), as does a DELETE whose
#                       preconditions (uid, resourceVersion) do not hold.
#                       ?dryRun answers without changing the pod. Every change
#                       of a pod gives it a new resourceVersion.
#   selectors           labels: k=v, k==v, k!=v, k, !k, k in (a,b),
#                       k notin (a,b); fields: metadata.name,
#                       metadata.namespace, status.phase, spec.nodeName with
#                       =, ==, !=; anything else answers 400. A watch whose
#                       selector a pod leaves (a label changed) gets DELETED.
#   --request-log [PATH] ($ESB_FAKE_REQUEST_LOG) a JSON line for each API
#                       request as it arrives ({"seq", "t", "method", "path",
#                       "query"}) and one as it is answered ({"seq", "t",
#                       "code"}, the same seq); without PATH, requests.jsonl
#                       beside the port file. POST /_fake/mark/TEXT adds
#                       {"seq", "t", "mark"}: a spec's own point in the order.
#                       The control endpoints are not logged. Each request's
#                       line has its "agent" too (its User-Agent).
#   --unauthorized-agent PREFIX  401 Unauthorized to the API requests whose
#                       User-Agent starts with PREFIX (a client whose token
#                       expired, beside kubectl, whose has not).
#   POST /_fake/hold-patches/1, /0: PATCH and PUT of pods arrive (and are
#                       logged) but wait until it is 0 again (30 s at most).
#   generateName        a create without a name takes generateName and five
#                       letters, as the API server's name generator does.
#   --quota-pods N      ($ESB_FAKE_QUOTA_PODS) a namespace holds at most N
#                       pods that have not ended (a ResourceQuota's "pods"):
#                       a create past it answers 403 exceeded quota, and
#                       GET resourcequotas lists the quota with its use.
#                       POST /_fake/quota-pods/N sets it (-1: no quota).

def warm_options(ap):
    env = os.environ.get
    ap.add_argument("--start-delay", type=float, default=float(env("ESB_FAKE_START_DELAY") or 0),
                    help="seconds a created pod stays Pending before its container runs")
    ap.add_argument("--request-log", nargs="?", const="", default=env("ESB_FAKE_REQUEST_LOG"),
                    help="append each API request and its answer as JSON lines (default: beside the port file)")
    ap.add_argument("--quota-pods", type=int, default=int(env("ESB_FAKE_QUOTA_PODS") or -1),
                    help="at most N pods that have not ended in a namespace (403 exceeded quota)")
    ap.add_argument("--unauthorized-agent", metavar="PREFIX",
                    help="401 Unauthorized to API requests whose User-Agent starts with PREFIX")


def warm_refused_agent(handler):
    """--unauthorized-agent: the credentials of one client refused (401),
    as a token expired; True where it answered so."""
    agent = handler.headers.get("User-Agent") or ""
    if not options.unauthorized_agent or not agent.startswith(options.unauthorized_agent):
        return False
    handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    handler.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
    return True


warm_log = [None, 0]   # the request log's file, its last seq


def warm_open_log():
    if options.request_log is None:
        return
    path = options.request_log or os.path.join(os.path.dirname(os.path.abspath(options.port_file)),
                                               "requests.jsonl")
    warm_log[0] = open(path, "a", buffering=1)


def warm_log_line(entry):
    """Appends entry with the next seq; returns that seq. Call with state_lock held."""
    if not warm_log[0]:
        return None
    warm_log[1] += 1
    entry = dict(seq=warm_log[1], t=time.time(), **entry)
    warm_log[0].write(json.dumps(entry) + "\n")
    return warm_log[1]


def warm_log_request(handler, method, url):
    """An API request arrives (state_lock held): its seq, for its answer's line."""
    handler.log_seq = None
    if not url.path.startswith("/_fake/"):
        handler.log_seq = warm_log_line({"method": method, "path": url.path, "query": url.query,
                                         "agent": handler.headers.get("User-Agent") or ""})


def warm_log_answer(handler, code):
    seq = getattr(handler, "log_seq", None)
    if seq is not None:
        handler.log_seq = None
        with state_lock:
            warm_log[0].write(json.dumps({"seq": seq, "t": time.time(), "code": code}) + "\n")


# -- a pod's start takes time (--start-delay) --

def warm_start(pod):
    """The pod just created (state_lock held): its container starts after the delay."""
    delay = options.start_delay
    if delay <= 0:
        threading.Timer(0.05, pod.start).start()
        return
    pod.starting = True
    pod.obj["status"] = {"phase": "Pending"}  # as created: the scheduler has not seen it
    threading.Timer(delay / 2, warm_scheduled, args=(pod,)).start()
    threading.Timer(delay, warm_container_starts, args=(pod,)).start()


def warm_pending(pod):
    """Whether the pod still waits for its start (state_lock held)."""
    return not pod.deleted and pods.get(pod.key) is pod and pod.obj["status"]["phase"] == "Pending"


def warm_scheduled(pod):
    with state_lock:
        if warm_pending(pod) and pod.starting and not pod.obj["spec"].get("nodeName"):
            pod.obj["spec"]["nodeName"] = "fake-node"
            pod.set_status("Pending", {"waiting": {"reason": "ContainerCreating"}})


def warm_container_starts(pod):
    with state_lock:
        go = warm_pending(pod) and pod.starting
        pod.starting = False
    if go:
        pod.start()


def warm_start_refused(handler, pod, log=False):
    """Exec, attach (or log) of a pod whose container has not started:
    answered as a cluster answers it. Whether it was."""
    with state_lock:
        starting = pod is not None and pod.starting
        node = pod and pod.obj["spec"].get("nodeName")
    if not starting:
        return False
    container = pod.container()["name"]
    if log and not node:  # the API server has no node to ask: an empty log
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    if log:
        msg = 'container "%s" in pod "%s" is waiting to start: ContainerCreating' % (container, pod.key[1])
    elif not node:
        msg = "pod %s does not have a host assigned" % pod.key[1]
    else:
        msg = 'container not found ("%s")' % container
    handler.send_json(400, status_obj(400, "BadRequest", msg))
    return True


# -- changes under a resourceVersion: PATCH, PUT, DELETE preconditions --

def conflict(name, detail="the object has been modified; please apply your changes to the latest version "
                          "and try again"):
    obj = status_obj(409, "Conflict", 'Operation cannot be fulfilled on pods "%s": %s' % (name, detail))
    obj["details"] = {"name": name, "kind": "pods"}
    return obj


def invalid(name, field, why):
    obj = status_obj(422, "Invalid", 'Pod "%s" is invalid: %s: %s' % (name, field, why))
    obj["details"] = {"name": name, "kind": "Pod", "causes": [{"reason": "FieldValueInvalid",
                                                               "message": why, "field": field}]}
    return obj


def merge_patch(target, patch, strategic):
    """RFC 7386; strategic: lists of objects with a name merge by name, keys
    that start with $ (kubectl apply's directives) are left out."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif strategic and isinstance(value, list) and isinstance(out.get(key), list) and \
                all(isinstance(v, dict) and "name" in v for v in value + out[key]):
            merged = {v["name"]: v for v in out[key]}
            for v in value:
                merged[v["name"]] = merge_patch(merged.get(v["name"], {}), v, True)
            out[key] = list(merged.values())
        else:
            out[key] = merge_patch(out.get(key), value, strategic)
    return out


def json_pointer(doc, path):
    """The container and the last key of an RFC 6901 path in doc."""
    keys = [k.replace("~1", "/").replace("~0", "~") for k in path.split("/")[1:]]
    if not keys:
        raise ValueError("the root cannot be patched")
    for k in keys[:-1]:
        doc = doc[int(k)] if isinstance(doc, list) else doc[k]
    last = keys[-1]
    if isinstance(doc, list):
        last = len(doc) if last == "-" else int(last)
    return doc, last


def json_patch(doc, ops):
    """RFC 6902 on doc (changed in place); ValueError names the op that failed."""
    for op in ops:
        try:
            kind = op["op"]
            parent, key = json_pointer(doc, op["path"])
            if kind == "test":
                if parent[key] != op["value"]:
                    raise ValueError("testing value %s failed" % op["path"])
            elif kind == "remove":
                del parent[key]
            elif kind in ("add", "replace"):
                if kind == "replace":
                    parent[key]  # must be there
                if isinstance(parent, list) and kind == "add":
                    parent.insert(key, copy.deepcopy(op["value"]))
                else:
                    parent[key] = copy.deepcopy(op["value"])
            elif kind in ("move", "copy"):
                src, skey = json_pointer(doc, op["from"])
                value = src[skey] if kind == "copy" else src.pop(skey)
                parent, key = json_pointer(doc, op["path"])
                if isinstance(parent, list):
                    parent.insert(key, copy.deepcopy(value))
                else:
                    parent[key] = copy.deepcopy(value)
            else:
                raise ValueError("unexpected kind: %s" % kind)
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError("%s operation does not apply: doc is missing path: %s (%s)" %
                             (op.get("op"), op.get("path"), e))
    return doc


PATCH_TYPES = {"application/merge-patch+json": False, "application/strategic-merge-patch+json": True}


def warm_patched(handler, pod, body):
    """The pod as the PATCH or PUT would leave it, or (code, Status)."""
    ctype = handler.headers.get("Content-Type", "").split(";")[0].strip()
    name = pod.key[1]
    if not isinstance(body, list if ctype == "application/json-patch+json" else dict):
        return 400, status_obj(400, "BadRequest", "the body of a %s of a pod is not a JSON %s" %
                               (ctype or handler.command, "array" if isinstance(body, dict) else "object"))
    if handler.command == "PUT":
        if not (body.get("metadata") or {}).get("resourceVersion"):
            return 422, invalid(name, "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")
        return body
    if ctype in PATCH_TYPES:
        return merge_patch(copy.deepcopy(pod.obj), body, PATCH_TYPES[ctype])
    if ctype == "application/json-patch+json":
        try:
            return json_patch(copy.deepcopy(pod.obj), body)
        except ValueError as e:
            return 422, status_obj(422, "Invalid", str(e))
    return 415, status_obj(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/strategic-merge-patch+json")


def warm_update_refused(pod, new):
    """Why a pod may not become new (code, Status), or None."""
    name = pod.key[1]
    meta = new.get("metadata") or {}
    if meta.get("name", name) != name:
        return 400, status_obj(400, "BadRequest", "the name of the object (%s) does not match the name on "
                               "the URL (%s)" % (meta.get("name"), name))
    if str(meta.get("resourceVersion")) != pod.obj["metadata"]["resourceVersion"]:
        return 409, conflict(name)
    old_spec, new_spec = dict(pod.obj["spec"]), dict(new.get("spec") or {})
    old_ads, new_ads = old_spec.pop("activeDeadlineSeconds", None), new_spec.pop("activeDeadlineSeconds", None)
    if old_spec != new_spec:
        return 422, invalid(name, "spec", "Forbidden: pod updates may not change fields other than "
                            "`spec.containers[*].image`, `spec.activeDeadlineSeconds` and `spec.tolerations`")
    if old_ads is not None and (new_ads is None or new_ads > old_ads):
        return 422, invalid(name, "spec.activeDeadlineSeconds", "Invalid value: %s: must be less than or equal "
                            "to the previous value %s" % (new_ads, old_ads))
    return None


def warm_update(handler, ns, name, q):
    """PATCH or PUT of a pod."""
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    try:
        body = json.loads(raw or b"{}")
    except ValueError as e:
        return handler.send_json(400, status_obj(400, "BadRequest", "the body is not JSON: %s" % e))
    with state_lock:
        if getattr(options, "hold_patches", False):
            state_lock.wait_for(lambda: not options.hold_patches, timeout=30)
        pod = pods.get((ns, name))
        if not pod:
            return handler.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
        new = warm_patched(handler, pod, body)
        refused = new if isinstance(new, tuple) else warm_update_refused(pod, new)
        if refused:
            return handler.send_json(*refused)
        if q.get("dryRun"):
            return handler.send_json(200, new)
        warm_apply(pod, new)
        obj = copy.deepcopy(pod.obj)
    handler.send_json(200, obj)


def warm_apply(pod, new):
    """What of new a pod takes (state_lock held; warm_update_refused said yes)."""
    meta, new_meta = pod.obj["metadata"], new.get("metadata") or {}
    for key in ("labels", "annotations", "finalizers"):
        if new_meta.get(key):
            meta[key] = new_meta[key]
        else:
            meta.pop(key, None)
    ads = (new.get("spec") or {}).get("activeDeadlineSeconds")
    armed = ads is not None and ads != pod.obj["spec"].get("activeDeadlineSeconds")
    if ads is not None:
        pod.obj["spec"]["activeDeadlineSeconds"] = ads
    meta["resourceVersion"] = next_rv()
    if armed and pod.started_at is not None:
        left = max(pod.started_at + float(ads) - time.time(), 0)
        threading.Timer(left, pod.deadline_exceeded, args=(ads,)).start()
    if pod.terminating and not meta.get("finalizers") and (not pod.proc or pod.proc.poll() is not None):
        life_remove(pod)
    state_lock.notify_all()


def warm_delete_refused(pod, delete_options):
    """A DELETE's preconditions that do not hold: (code, Status), or None (state_lock held)."""
    pre = (delete_options or {}).get("preconditions") or {}
    meta = pod.obj["metadata"]
    if pre.get("uid") and pre["uid"] != meta["uid"]:
        return 409, conflict(pod.key[1], "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                             % (pre["uid"], meta["uid"]))
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
        return 409, conflict(pod.key[1], "the ResourceVersion in the precondition (%s) does not match the "
                             "ResourceVersion in record (%s). The object might have been modified"
                             % (pre["resourceVersion"], meta["resourceVersion"]))
    return None


# -- selectors --

LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def selector_terms(text):
    """The comma-separated terms of a selector, the commas of (a,b) kept."""
    terms, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(text):
    """[(key, op, values)], op one of = != in notin exists !; ValueError says what is wrong."""
    out = []
    for term in selector_terms(text):
        m = re.match(r"^(\S+)\s+(in|notin)\s*\(([^()]*)\)$", term)
        if m:
            key, op, values = m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",")]
        elif term.startswith("!"):
            key, op, values = term[1:].strip(), "!", []
        elif "!=" in term:
            key, value = term.split("!=", 1)
            key, op, values = key.strip(), "!=", [value.strip()]
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            key, op, values = key.strip(), "=", [value.strip()]
        else:
            key, op, values = term, "exists", []
        if not LABEL_KEY.match(key) or not all(LABEL_VALUE.match(v) for v in values):
            raise ValueError("unable to parse requirement: invalid label selector term %r" % term)
        out.append((key, op, values))
    return out


def label_selected(labels, selector):
    for key, op, values in selector:
        have = labels.get(key)
        if op == "=" and have != values[0] or op == "!=" and have == values[0] or \
                op == "in" and have not in values or op == "notin" and have in values or \
                op == "exists" and have is None or op == "!" and have is not None:
            return False
    return True


FIELDS = {"metadata.name": lambda o: o["metadata"]["name"],
          "metadata.namespace": lambda o: o["metadata"]["namespace"],
          "status.phase": lambda o: o.get("status", {}).get("phase", ""),
          "spec.nodeName": lambda o: o["spec"].get("nodeName", "")}


def parse_field_selector(text):
    out = []
    for term in selector_terms(text):
        m = re.match(r"^([^!=]+)(!=|==|=)(.*)$", term)
        if not m or m.group(1).strip() not in FIELDS:
            raise ValueError('field label not supported: %s' % (m.group(1).strip() if m else term))
        out.append((FIELDS[m.group(1).strip()], m.group(2) != "!=", m.group(3).strip()))
    return out


def field_selected(obj, selector):
    return all((get(obj) == value) == equal for get, equal, value in selector)


# -- a pod's name: given, or made of its generateName (a pool's pods) --

NAME_LETTERS = "bcdfghjklmnpqrstvwxz2456789"  # as the API server's names.SimpleNameGenerator


def warm_named(handler, meta):
    """Whether the pod has a name now; else answered 422."""
    if meta.get("name"):
        return True
    if meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(NAME_LETTERS[b % len(NAME_LETTERS)] for b in os.urandom(5))
        return True
    handler.send_json(422, invalid("", "metadata.name", "Required value: name or generateName is required"))
    return False


# -- a quota of pods --

def warm_quota_used(ns):
    return sum(1 for p in pods.values()
               if p.key[0] == ns and p.obj["status"]["phase"] not in ("Succeeded", "Failed"))


def warm_quota_refused(handler, ns, name):
    """A create past --quota-pods: answered 403, as a ResourceQuota refuses it."""
    with state_lock:
        limit, used = options.quota_pods, warm_quota_used(ns)
    if limit < 0 or used < limit:
        return False
    msg = 'pods "%s" is forbidden: exceeded quota: echo-sandbox-pods, requested: pods=1, used: pods=%d, ' \
          'limited: pods=%d' % (name, used, limit)
    handler.send_json(403, status_obj(403, "Forbidden", msg))
    return True


def warm_quotas(handler, ns):
    """GET of a namespace's resourcequotas."""
    items = []
    with state_lock:
        if options.quota_pods >= 0:
            hard = {"pods": str(options.quota_pods)}
            items.append({"apiVersion": "v1", "kind": "ResourceQuota",
                          "metadata": {"name": "echo-sandbox-pods", "namespace": ns, "resourceVersion": "1"},
                          "spec": {"hard": hard},
                          "status": {"hard": hard, "used": {"pods": str(warm_quota_used(ns))}}})
    handler.send_json(200, {"kind": "ResourceQuotaList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(resource_version[0])}, "items": items})


def warm_set(what, value):
    with state_lock:
        setattr(options, what, value)
    return {what: value}


def warm_mark(handler, text):
    with state_lock:
        seq = warm_log_line({"mark": text})
    handler.send_json(200 if seq else 404, {"seq": seq})


def warm_now(handler, name, step):
    """POST /_fake/schedule/NAME, /_fake/start/NAME: that step of a pod's
    start, now (a spec's interlock, whatever the delay)."""
    with state_lock:
        found = [p for p in pods.values() if p.obj["metadata"]["name"] == name]
    for pod in found:
        warm_scheduled(pod)
        if step == "start":
            warm_container_starts(pod)
    handler.send_json(200 if found else 404, {"found": len(found)})


def warm_hold_patches(handler, value):
    """POST /_fake/hold-patches/1: a PATCH or PUT of a pod that arrives (and
    is logged) waits, 30 s at most, until POST /_fake/hold-patches/0: a
    spec's own point between a claim's request and its answer."""
    with state_lock:
        options.hold_patches = value == "1"
        state_lock.notify_all()
    handler.send_json(200, {"hold_patches": value == "1"})


WARM_CONTROLS = {
    "hold-patches": warm_hold_patches,
    "schedule": lambda h, name: warm_now(h, name, "schedule"),
    "start": lambda h, name: warm_now(h, name, "start"),
    "start-delay": lambda h, v: h.send_json(200, warm_set("start_delay", float(v))),
    "quota-pods": lambda h, v: h.send_json(200, warm_set("quota_pods", int(v))),
    "mark": warm_mark,
}


# ---- pods/exec over WebSocket ----
# kubectl 1.30 and later ask for exec over WebSocket first (client-go's
# KUBECTL_REMOTE_COMMAND_WEBSOCKETS, on by default since 1.30; SPDY only
# where the upgrade fails, and 1.29 and older use SPDY unless it is set):
# v5.channel.k8s.io, with v4 as the fallback. The exec'd command runs as a
# local process in the pod's context: the container's working dir (its
# emptyDir, so files persist from exec to exec) and environment, in a
# session of its own (as runc starts it). As on a node, a client that goes
# away closes the process's stdin and nothing more: the process runs on.
# The container's end (its command exits, the pod is deleted or evicted, its
# deadline passes) kills every exec'd process, as the runtime ends the
# container's cgroup. --deny-exec: 403 on pods/exec; --drop-exec-at TEXT:
# the exec connection is cut, without a close frame, once the stdout it
# relayed holds TEXT; --delete-at-exec-output TEXT: the pod is deleted from
# outside (as POST /_fake/delete/NAME) once an exec's stdout holds TEXT;
# --drop-exec-status: the exec connection is cut where the status of an
# exec'd command that ended would go (its output all relayed);
# --no-v5-agent PREFIX: an older server's WebSocket, which has no v5, to
# requests whose User-Agent starts with PREFIX (a client that offers v5
# alone is refused as x/net/websocket refuses it: a plain 403; kubectl would
# fall back to SPDY there, which the fake does not speak, so its requests
# are served v5 still); --unauthorized-exec-agent PREFIX: 401 to pods/exec requests whose
# User-Agent starts with PREFIX (credentials that expired between requests);
# --ignore-protocol-agent PREFIX: the upgrade of such a request names no
# protocol (a server that ignores the offer) and the command runs;
# --fragment-exec-frames: stdout and stderr in fragmented messages, with
# control frames between their frames (ws_fragments); --exec-ping-flood N:
# N pings, then one more ("last"), before the exec starts, the client's
# frames unread meanwhile; then its pongs are read up to the last's, and
# how many came before it is written to pongs.txt beside the port file;
# --exec-close-before-status: a close frame comes before the status (which
# a client must not take: nothing follows a close); --hang-exec: the exec is
# upgraded and its command never started (a kubelet that does not answer),
# until the client goes.

def exec_options(ap):
    ap.add_argument("--deny-exec", action="store_true", help="403 on pods/exec")
    ap.add_argument("--drop-exec-at", metavar="TEXT",
                    help="cut the exec connection once the stdout it relayed holds TEXT")
    ap.add_argument("--delete-at-exec-output", metavar="TEXT",
                    help="delete the pod from outside once an exec's stdout holds TEXT")
    ap.add_argument("--drop-exec-status", action="store_true",
                    help="cut the exec connection where its status would go")
    ap.add_argument("--no-v5-agent", metavar="PREFIX",
                    help="WebSocket without v5 to requests whose User-Agent starts with PREFIX")
    ap.add_argument("--ignore-protocol-agent", metavar="PREFIX",
                    help="upgrade to no protocol the exec of requests whose User-Agent starts with PREFIX")
    ap.add_argument("--exec-ping-flood", metavar="N", type=int,
                    help="N pings and a last one before the exec's output, unread until the last's pong")
    ap.add_argument("--hang-exec", action="store_true",
                    help="upgrade an exec and never start its command, until the client goes")
    ap.add_argument("--exec-close-before-status", action="store_true",
                    help="a close frame before the status of an exec'd command that ended")
    ap.add_argument("--fragment-exec-frames", action="store_true",
                    help="stdout and stderr in fragmented messages, control frames between their frames")
    ap.add_argument("--unauthorized-exec-agent", metavar="PREFIX",
                    help="401 to pods/exec requests whose User-Agent starts with PREFIX")


def exec_delete_pod(pod):
    """--delete-at-exec-output: the pod deleted from outside, its container killed."""
    with state_lock:
        if pods.get(pod.key) is pod:
            pod.kill()
            pod.deleted = True
            del pods[pod.key]
        state_lock.notify_all()


def exec_mark(pod):
    """What every process exec'd into the pod carries in its environment,
    and passes on to what it starts: the container's cgroup, which holds a
    process that left the exec's process group (setsid) too."""
    return ("ESB_FAKE_CONTAINER=%d/%s/%s/%d" % ((os.getpid(),) + pod.key + (id(pod),))).encode()


def exec_marked(pod):
    """The pids of the live processes that carry the pod's mark."""
    mark, found = exec_mark(pod) + b"\0", []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if (b"\0" + f.read()).find(b"\0" + mark) >= 0:
                    with open("/proc/%s/stat" % entry) as st:
                        if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def exec_container_ended(pod):
    """The container is gone: so are the processes exec'd into it, and
    every process they started, wherever it went (the runtime ends the
    container's cgroup)."""
    for proc in list(pod.execs):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in exec_marked(pod) if pod.execs else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ws_upgrade(handler):
    """Answers a WebSocket upgrade (v5 or v4 channel.k8s.io): the protocol, or None once refused."""
    offered = [p.strip() for p in handler.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    old = options.no_v5_agent and (handler.headers.get("User-Agent") or "").startswith(options.no_v5_agent)
    served = ("v4.channel.k8s.io",) if old else ("v5.channel.k8s.io", "v4.channel.k8s.io")
    proto = next((p for p in served if p in offered), None)
    key = handler.headers.get("Sec-WebSocket-Key")
    if key and not proto and old:
        text = ("requested protocol(s) are not supported: %s; supports %s" % (offered, list(served))).encode()
        handler.send_response(403)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(text)))
        handler.end_headers()
        handler.wfile.write(text)
        return None
    if not key or not proto:
        handler.send_json(400, status_obj(400, "BadRequest", "websocket v4/v5 required"))
        return None
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    ignoring = options.ignore_protocol_agent
    ignoring = ignoring and (handler.headers.get("User-Agent") or "").startswith(ignoring)
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    if not ignoring:
        handler.send_header("Sec-WebSocket-Protocol", proto)
    handler.end_headers()
    handler.wfile.flush()
    return proto


def ws_frame(opcode, payload, fin=True, wide=False):
    """A server's frame; wide: its length in 8 bytes whatever it is."""
    header = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126 and not wide:
        header += bytes([n])
    elif n < 65536 and not wide:
        header += bytes([126]) + struct.pack(">H", n)
    else:
        header += bytes([127]) + struct.pack(">Q", n)
    return header + payload


def ws_fragments(channel, data):
    """--fragment-exec-frames: a message of channel's data as a server may
    send it (RFC 6455 5.4): its channel byte alone in a first frame, a ping
    and a pong between its frames, its lengths in 8 bytes, an empty frame."""
    half = len(data) // 2
    return (ws_frame(0x2, bytes([channel]), fin=False) + ws_frame(0x9, b"ping") +
            ws_frame(0x0, data[:half], fin=False, wide=True) + ws_frame(0xA, b"") +
            ws_frame(0x0, b"", fin=False) + ws_frame(0x0, data[half:], wide=True))


def ws_sender(sock):
    lock = threading.Lock()

    def send_frame(opcode, payload):
        send_raw(ws_frame(opcode, payload))

    def send_raw(data):
        with lock:
            try:
                sock.sendall(data)
            except OSError:
                pass
    send_frame.raw = send_raw
    return send_frame


def exec_status(code):
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: exit code %d" % code,
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def exec_refused(handler, ns, name, pod):
    agent = handler.headers.get("User-Agent") or ""
    if options.unauthorized_exec_agent and agent.startswith(options.unauthorized_exec_agent):
        handler.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
    elif options.deny_exec:
        msg = 'pods "%s" is forbidden: User "system:serviceaccount:%s:echo-sandbox" cannot create resource ' \
              '"pods/exec" in API group "" in the namespace "%s"' % (name, ns, ns)
        handler.send_json(403, status_obj(403, "Forbidden", msg))
    elif not pod:
        handler.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name))
    elif warm_start_refused(handler, pod):
        pass
    elif pod.proc is None or pod.proc.poll() is not None:
        handler.send_json(400, status_obj(400, "BadRequest", "container not found (%s)" % name))
    else:
        return False
    return True


def exec_start(pod, argv):
    env = dict(pod.env)
    key, value = exec_mark(pod).decode().split("=", 1)
    env[key] = value
    if options.busybox and argv[:1] == ["/bin/sh"]:
        argv = [options.busybox, "sh"] + argv[1:]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=pod.workdir, start_new_session=True)
    with state_lock:
        pod.execs.append(proc)
        if pod.deleted or pod.proc.poll() is not None:  # the container went meanwhile
            exec_container_ended(pod)
    return proc


def exec_pod(handler, ns, name, q):
    with state_lock:
        pod = pods.get((ns, name))
    if exec_refused(handler, ns, name, pod) or not ws_upgrade(handler):
        return
    sock = handler.connection
    if options.hang_exec:
        while handler.rfile.read(65536):  # the client's frames, to its end
            pass
        handler.close_connection = True
        return
    send_frame = ws_sender(sock)
    held = exec_ping_flood(handler, send_frame, options.exec_ping_flood) if options.exec_ping_flood else []
    proc = exec_start(pod, q.get("command", []))
    for data in held:  # the stdin that came among the pongs
        if data[:1] == b"\0":
            proc.stdin.write(data[1:])
            proc.stdin.flush()
        elif data == b"\xff\0":
            proc.stdin.close()

    relayed = bytearray()  # --drop-exec-at: the stdout relayed

    def pump(fd, channel):
        while True:
            data = os.read(fd.fileno(), 65536)
            if not data:
                break
            if options.fragment_exec_frames:
                send_frame.raw(ws_fragments(channel, data))
            else:
                send_frame(0x2, bytes([channel]) + data)
            if channel == 1:
                relayed.extend(data)
            if options.drop_exec_at and channel == 1 and options.drop_exec_at.encode() in relayed:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            deleting = options.delete_at_exec_output
            if deleting and channel == 1 and deleting.encode() in relayed and not pod.deleted:
                exec_delete_pod(pod)
    pumps = [threading.Thread(target=pump, args=(fd, ch), daemon=True)
             for fd, ch in ((proc.stdout, 1), (proc.stderr, 2))]
    for t in pumps:
        t.start()
    threading.Thread(target=handler.read_client, args=(proc, send_frame), daemon=True).start()
    code = proc.wait()
    for t in pumps:
        t.join()
    code = code if code >= 0 else 128 - code
    if options.drop_exec_status:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        handler.close_connection = True
        return
    if options.exec_close_before_status:
        send_frame(0x8, struct.pack(">H", 1000))
    send_frame(0x2, bytes([3]) + json.dumps(exec_status(code)).encode())
    send_frame(0x8, struct.pack(">H", 1000))
    handler.close_connection = True


def exec_ping_flood(handler, send_frame, n):
    """--exec-ping-flood: n pings unread, a last one, the pongs up to its;
    the data frames that came among them, returned. Its steps go to
    flood.log beside the port file (as they happen: a spec that fails on a
    flood that never ends says how far it came)."""
    log = open(os.path.join(os.path.dirname(os.path.abspath(options.port_file)), "flood.log"), "a", buffering=1)
    batch = ws_frame(0x9, b"p" * 125) * 1000
    for i in range(n // 1000):
        send_frame.raw(batch)
        if i % 50 == 49:
            log.write("%.3f sent %d pings\n" % (time.time(), (i + 1) * 1000))
    send_frame(0x9, b"last")
    log.write("%.3f sent the last ping; reading the pongs\n" % time.time())
    pongs, held = 0, []
    while True:
        head = handler.rfile.read(2)
        if len(head) < 2:
            break
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack(">H", handler.rfile.read(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", handler.rfile.read(8))[0]
        mask = handler.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = handler.rfile.read(size)
        if head[0] & 0x0F == 0xA and size != 4:
            pongs += 1  # a "p" ping's: left masked
            continue
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if head[0] & 0x0F == 0xA:
            break
        held.append(data)
    log.write("%.3f read %d pongs, the last one's%s; %d data frames held\n"
              % (time.time(), pongs, "" if len(head) == 2 else " not (the connection ended)", len(held)))
    log.close()
    with open(os.path.join(os.path.dirname(os.path.abspath(options.port_file)), "pongs.txt"), "w") as f:
        f.write("%d\n" % pongs)
    return held


# ---- namespaces: what `spec/run --kubeconfig` makes for its run and
# deletes after it (kubectl create namespace, kubectl delete namespace). The
# pods of any namespace are served whether it was made or not; a namespace
# made is listed and got, and its delete deletes its pods. ----
namespaces = {}     # name -> Namespace
used_namespaces = set()  # the namespaces pods were created in, made or not (admission_refused)


def namespace_labels(name, labels=None):
    """A namespace's labels: its own (those it was made with), the name label
    the API server adds, and --namespace-label's ([NS:]KEY=VALUE: of NS alone)."""
    out = dict(labels or {}, **{"kubernetes.io/metadata.name": name})
    for label in options.namespace_label:
        key, _, value = label.partition("=")
        only, _, key = key.rpartition(":")
        if only in ("", name):
            out[key] = value
    return out


def namespace_route(handler, method, name):
    if method == "POST" and name is None:
        meta = handler.body().get("metadata") or {}
        name = meta.get("name")
        with state_lock:
            if name in namespaces:
                return handler.send_json(409, status_obj(409, "AlreadyExists",
                                                         'namespaces "%s" already exists' % name))
            namespaces[name] = {"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
                                "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now(),
                                             "resourceVersion": next_rv(),
                                             "labels": namespace_labels(name, meta.get("labels"))}}
            return handler.send_json(201, namespaces[name])
    if method == "GET" and name is None:
        with state_lock:
            items = list(namespaces.values())
        return handler.send_json(200, {"apiVersion": "v1", "kind": "NamespaceList",
                                       "metadata": {"resourceVersion": next_rv()}, "items": items})
    with state_lock:
        ns = namespaces.get(name)
        if ns and method == "DELETE":
            del namespaces[name]
            for key in [k for k in pods if k[0] == name]:
                pod = pods.pop(key)
                pod.deleted = True
                pod.kill()
            state_lock.notify_all()
            ns = dict(ns, status={"phase": "Terminating"})
    if method == "DELETE":
        handler.body()
    if not ns and method == "GET" and name in used_namespaces:
        # one never made that pods were created in (the fake serves the pods of any namespace): it exists
        ns = {"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
              "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                           "creationTimestamp": now(), "resourceVersion": "1", "labels": namespace_labels(name)}}
    if not ns or method not in ("GET", "DELETE"):
        return handler.send_json(404, status_obj(404, "NotFound", 'namespaces "%s" not found' % name))
    return handler.send_json(200, ns)
# ---- end of namespaces ----


# ---- Services and pod IPs: the probe pods of `doctor --prove --k8s` try
# the API server's Service (kubernetes in default: a clusterIP on loopback,
# its port the fake's own, as the fake's pods run on the host's network) and
# a pod of their own (its status.podIP, loopback too, once it runs). ----
def service_route(handler, ns, name):
    port = handler.server.server_address[1]
    services = {("default", "kubernetes"): {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
        "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.1", "clusterIPs": ["127.0.0.1"],
                 "ports": [{"name": "https", "port": port, "protocol": "TCP", "targetPort": port}]}}}
    if name is None:
        return handler.send_json(200, {"apiVersion": "v1", "kind": "ServiceList", "metadata": {"resourceVersion": "1"},
                                       "items": [v for k, v in services.items() if k[0] == ns]})
    if (ns, name) not in services:
        return handler.send_json(404, status_obj(404, "NotFound", 'services "%s" not found' % name))
    return handler.send_json(200, services[(ns, name)])


def pod_ip(status):
    """A pod that ran has its address: the host's loopback, whose network it is on."""
    if status["phase"] != "Pending":
        status.update({"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "hostIP": "127.0.0.1"})
# ---- end of Services and pod IPs ----


# ---- Pod Security admission: a namespace labelled
# pod-security.kubernetes.io/enforce=restricted (--namespace-label) refuses
# a pod that is not run as non-root, without privilege escalation, with
# every capability dropped and a seccomp profile, as the API server does; a
# create with dryRun (kubectl --dry-run=server) is judged so, answered, and
# makes nothing. --forbid-namespaces: the account may not get namespaces. ----
def restricted_violations(obj):
    spec = obj.get("spec", {})
    pod_sc = spec.get("securityContext") or {}
    out = []
    for c in spec.get("containers", []):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append('allowPrivilegeEscalation != false (container "%s" must set '
                       'securityContext.allowPrivilegeEscalation=false)' % c.get("name"))
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            out.append('unrestricted capabilities (container "%s" must set securityContext.capabilities.drop=["ALL"])'
                       % c.get("name"))
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
            out.append('runAsNonRoot != true (pod or container "%s" must set securityContext.runAsNonRoot=true)'
                       % c.get("name"))
        if not (sc.get("seccompProfile") or pod_sc.get("seccompProfile")):
            out.append('seccompProfile (pod or container "%s" must set securityContext.seccompProfile.type to '
                       '"RuntimeDefault" or "Localhost")' % c.get("name"))
    return out


def admission_refused(handler, ns, obj):
    """Answers a create that admission refuses, or a dry run: True; else False."""
    with state_lock:
        made = namespaces.get(ns)
        used_namespaces.add(ns)
    labels = namespace_labels(ns, made and made["metadata"].get("labels"))
    violations = restricted_violations(obj) if labels.get("pod-security.kubernetes.io/enforce") == "restricted" else []
    name = obj["metadata"].get("name", "")
    if violations:
        handler.send_json(403, status_obj(403, "Forbidden", 'pods "%s" is forbidden: violates PodSecurity '
                                                            '"restricted:latest": %s' % (name, ", ".join(violations))))
        return True
    if "dryRun" in parse_qs(urlparse(handler.path).query):
        obj["metadata"].update({"namespace": ns, "creationTimestamp": now()})
        handler.send_json(201, obj)
        return True
    return False


def namespace_forbidden(handler, name):
    handler.send_json(403, status_obj(403, "Forbidden", 'namespaces "%s" is forbidden: User '
                                      '"system:serviceaccount:echo-sandbox:echo-sandbox-executor" cannot get resource '
                                      '"namespaces" in API group "" at the cluster scope' % name))
# ---- end of Pod Security admission ----


# ---- the kubelet's eviction for ephemeral storage (--evict-storage): while
# a pod runs, the size of its working dir (its emptyDir) against the lower
# of its container's ephemeral-storage limit and that volume's sizeLimit;
# past it, the pod is evicted with the kubelet's message. ----
def storage_bytes(text):
    m = re.match(r"^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$", text or "")
    if not m:
        return None
    unit = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9,
            "T": 10**12}.get(m.group(2), 1)
    return float(m.group(1)) * unit


def storage_limits(pod):
    c = pod.container()
    limits = []
    q = c.get("resources", {}).get("limits", {}).get("ephemeral-storage")
    if storage_bytes(q):
        limits.append((storage_bytes(q), "Pod ephemeral local storage usage exceeds the total limit of containers "
                                         "%s." % q))
    mount = next((m for m in c.get("volumeMounts", []) if m.get("mountPath") == c.get("workingDir")), {})
    for v in pod.obj["spec"].get("volumes", []):
        size = v.get("name") == mount.get("name") and (v.get("emptyDir") or {}).get("sizeLimit")
        if size and storage_bytes(size):
            limits.append((storage_bytes(size), 'Usage of EmptyDir volume "%s" exceeds the limit "%s".' % (v["name"], size)))
    return sorted(limits)


def storage_used(path):
    used = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                used += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return used


def storage_watch(pod):
    limits = storage_limits(pod)
    while limits and pod.workdir and not pod.exited.wait(0.05):
        if storage_used(pod.workdir) > limits[0][0]:
            with state_lock:
                if pod.deleted or pod.obj["status"]["phase"] != "Running":
                    return
                pod.kill()
                term = {"exitCode": 137, "reason": "Error", "finishedAt": now()}
                pod.set_status("Failed", {"terminated": term}, reason="Evicted", message=limits[0][1])
            return
# ---- end of the kubelet's eviction for ephemeral storage ----


def request(port, method, path, body=None, content_type="application/json"):
    """For the specs, where kubectl cannot (a DELETE's preconditions, a body
    kubectl would not send): prints the answer's code, a newline, its body."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    conn.request(method, path, body=body.encode() if body else None, headers={"Content-Type": content_type})
    r = conn.getresponse()
    print(r.status)
    print(r.read().decode())


def main():
    global options
    import sys
    if len(sys.argv) >= 5 and sys.argv[1] == "request":
        return request(*sys.argv[2:7])
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--minor", type=int, default=30)
    ap.add_argument("--forbid", action="append", default=[])
    ap.add_argument("--hang-delete", action="store_true")
    ap.add_argument("--fail-delete", type=int, default=0, help="the first N DELETEs answer 500")
    ap.add_argument("--fail-get", action="store_true", help="a GET of one pod answers 500")
    ap.add_argument("--drop-attach", action="store_true", help="cut the attach connection after the first stdout output")
    ap.add_argument("--deny-attach", action="store_true", help="403 on pods/attach")
    ap.add_argument("--drop-attach-at", metavar="TEXT",
                    help="cut the attach connection once the stdout it relayed holds TEXT")
    ap.add_argument("--log-stderr-behind", action="store_true",
                    help="a pod's log has its stderr's first byte, then its stdout, then the rest of its stderr")
    ap.add_argument("--log-stdout-first", action="store_true",
                    help="a pod's log has its stdout before its stderr (the runtime's stdout reader ran ahead)")
    ap.add_argument("--fail-create", type=int, default=0, help="the first N pod creates answer 503")
    # how a create fails: see FAILED_CREATE
    ap.add_argument("--fail-create-code", type=int, default=503, choices=sorted(FAILED_CREATE),
                    help="what the failing creates of --fail-create answer (429: without Retry-After)")
    ap.add_argument("--slow-create", type=float, default=0, help="seconds a create takes")
    ap.add_argument("--hang-after-create", action="store_true", help="answer nothing once a pod exists")
    ap.add_argument("--deny", action="append", default=[], help='e.g. "delete pods" for auth can-i')
    ap.add_argument("--network-policy", action="store_true", help="serve the deny-all NetworkPolicy")
    ap.add_argument("--busybox", help="run pods' /bin/sh as this BusyBox, its applets alone on PATH")
    # a pod's own pid namespace: see Pod.start
    ap.add_argument("--pid-namespace", action="store_true",
                    help="run each pod's command as pid 1 of a pid namespace of its own (needs root)")
    # an image whose tool fails: see failing_dir
    ap.add_argument("--failing-tool", action="append", default=[],
                    help="this tool fails in the pods (first on their PATH; not with --busybox)")
    # a node that denies setting resource limits: see Pod.start
    ap.add_argument("--no-setrlimit", metavar="HELPER",
                    help="run pods' commands where setting a resource limit fails (HELPER: esb-spec-helper)")
    # ---- doctor --prove --k8s: see namespace_labels and storage_watch
    ap.add_argument("--namespace-label", action="append", default=[], metavar="[NS:]KEY=VALUE",
                    help="a label of every namespace served, or of NS (pod-security.kubernetes.io/enforce=restricted)")
    ap.add_argument("--forbid-namespaces", action="store_true", help="403 on a GET of a namespace")
    ap.add_argument("--evict-storage", action="store_true",
                    help="evict a pod whose working dir outgrows its ephemeral-storage limit or volume sizeLimit")
    # ---- per-request latency
    ap.add_argument("--latency", type=float, default=0, help="seconds before each API request is answered")
    ap.add_argument("--latency-after-create", type=float, default=0,
                    help="as --latency, once a pod exists (the create itself is quick)")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve the API over HTTPS too (its port in PORT_FILE.tls)")
    ap.add_argument("--tls-client-ca", metavar="CA", help="with --tls: a client certificate of this CA is required")
    life_options(ap)
    exec_options(ap)
    warm_options(ap)
    options = ap.parse_args()
    warm_open_log()
    trace("START " + " ".join(a for a in sys.argv[1:] if not a.startswith("/") and a != "--port-file"))
    latency[0] = options.latency
    if options.busybox:
        busybox_dir[0] = tempfile.mkdtemp(prefix="esb-fake-busybox.")
        applets = subprocess.run([options.busybox, "--list"], capture_output=True, text=True).stdout.split()
        for applet in applets:
            os.symlink(options.busybox, os.path.join(busybox_dir[0], applet))
    # ---- an image whose tool fails (--failing-tool NAME) ----
    # A wrapper step then fails before the program: the run is the
    # backend's failure, never the program's exit.
    if options.failing_tool:
        failing_dir[0] = tempfile.mkdtemp(prefix="esb-fake-failing.")
        for tool in options.failing_tool:
            path = os.path.join(failing_dir[0], tool)
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho \"%s: Read-only file system\" >&2\nexit 1\n" % tool)
            os.chmod(path, 0o755)
    # ---- end of an image whose tool fails ----
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if options.tls:
        # HTTPS beside HTTP: a second listener, the same API (the specs'
        # control requests stay on the plain one), its port in
        # PORT_FILE.tls; the certificate and key given (the spec's own CA
        # signed them); a client certificate of --tls-client-ca required
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(options.tls[0], options.tls[1])
        if options.tls_client_ca:
            ctx.load_verify_locations(options.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        tls_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls_server.daemon_threads = True
        tls_server.socket = ctx.wrap_socket(tls_server.socket, server_side=True)
        with open(options.port_file + ".tls.tmp", "w") as f:
            f.write("%d\n" % tls_server.server_address[1])
        os.rename(options.port_file + ".tls.tmp", options.port_file + ".tls")
        threading.Thread(target=tls_server.serve_forever, daemon=True).start()
    tmp = options.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, options.port_file)

    def stop(*_):
        with state_lock:
            for pod in pods.values():
                pod.kill()
        if busybox_dir[0]:
            shutil.rmtree(busybox_dir[0], ignore_errors=True)
        if failing_dir[0]:
            shutil.rmtree(failing_dir[0], ignore_errors=True)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
