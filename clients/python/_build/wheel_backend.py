"""A PEP 517 build backend of our own: the package is one pure-Python
directory, so a wheel is a zip of it and its metadata. It needs nothing to
be installed first, so `pip install ./clients/python` works offline, in a
venv that has only pip (setuptools there cannot make wheels without the
wheel package)."""
import base64
import hashlib
import os
import tarfile
import zipfile

NAME, VERSION = "echo_sandbox", "0.2.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METADATA = """Metadata-Version: 2.1
Name: echo-sandbox
Version: {version}
Summary: Client for the echo-sandbox daemon: run untrusted code in sandboxes
Requires-Python: >=3.8
Description-Content-Type: text/markdown

{readme}"""
WHEEL = "Wheel-Version: 1.0\nGenerator: echo-sandbox wheel_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files():
    root = os.path.join(HERE, NAME)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            yield os.path.join(root, name), "%s/%s" % (NAME, name)


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return METADATA.format(version=VERSION, readme=f.read())


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist_info = "%s-%s.dist-info" % (NAME, VERSION)
    wheel_name = "%s-%s-py3-none-any.whl" % (NAME, VERSION)
    entries = [(arc, open(path, "rb").read()) for path, arc in _package_files()]
    entries.append((dist_info + "/METADATA", _metadata().encode("utf-8")))
    entries.append((dist_info + "/WHEEL", WHEEL.encode("utf-8")))
    record = []
    for arc, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
    record.append(dist_info + "/RECORD,,")
    entries.append((dist_info + "/RECORD", ("\n".join(record) + "\n").encode("utf-8")))
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in entries:
            z.writestr(arc, data)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", "README.md", "_build/wheel_backend.py"):
            t.add(os.path.join(HERE, rel), base + "/" + rel)
        for path, arc in _package_files():
            t.add(path, base + "/" + arc)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode("utf-8")
        info.size = len(data)
        import io
        t.addfile(info, io.BytesIO(data))
    return name
