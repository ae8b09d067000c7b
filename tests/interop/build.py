"""Build the C++ osqueryd stand-ins from osqsdk's IDL with Apache Thrift's C++ runtime.

Needs Debian's thrift-compiler, libthrift-dev, libboost-dev and g++ (.ci/run installs them).
Builds are cached under .ci/build/cpp-<hash of the IDL and sources>.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IDL = ROOT / "osqsdk" / "extension" / "_wire" / "osquery.thrift"
SOURCES = Path(__file__).resolve().parent / "cpp"
PROGRAMS = {
    "osqueryd_standin": ["Extension.cpp", "osquery_types.cpp"],
    "manager_standin": ["Extension.cpp", "ExtensionManager.cpp", "osquery_types.cpp"],
}


class PeerUnavailable(RuntimeError):
    """A tool needed to build the C++ peers is missing."""


def missing_tools() -> list[str]:
    missing = [tool for tool in ("thrift", "g++") if shutil.which(tool) is None]
    if not Path("/usr/include/thrift/Thrift.h").exists():
        missing.append("libthrift-dev")
    if not Path("/usr/include/boost").exists():
        missing.append("libboost-dev")
    return missing


def build() -> Path:
    """Return the directory holding the built peers, building them if needed."""
    missing = missing_tools()
    if missing:
        raise PeerUnavailable("C++ Thrift peer needs: " + ", ".join(missing))
    digest = hashlib.sha256(IDL.read_bytes())
    for source in sorted(SOURCES.iterdir()):
        digest.update(source.name.encode() + source.read_bytes())
    out = ROOT / ".ci" / "build" / f"cpp-{digest.hexdigest()[:16]}"
    if all((out / name).exists() for name in PROGRAMS):
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["thrift", "--gen", "cpp", "-out", str(tmp), str(IDL)], check=True)
    for name, generated in PROGRAMS.items():
        cmd = ["g++", "-O2", "-std=c++17", f"-I{tmp}", f"-I{SOURCES}", "-o", str(tmp / name),
               str(SOURCES / f"{name}.cpp"), *(str(tmp / g) for g in generated),
               "-lthrift", "-lpthread"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building {name} failed:\n{result.stderr}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


if __name__ == "__main__":
    print(build())
    sys.exit(0)
