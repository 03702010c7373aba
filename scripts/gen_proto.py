"""Generate Python, gRPC and typed (mypy-protobuf) stubs from proto/ into src/.

Used by the package build (hatch_build.py) and by `make streaming-proto`. The output is
ignored by git: the .proto files are the contract, the stubs are build products.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def generate(root: Path) -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc  # build-time dependency

    proto_dir = root / "proto"
    out_dir = root / "src"
    protos = sorted(proto_dir.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        *_plugins(),
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *[str(p) for p in protos],
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} on {protos}")
    for proto in protos:
        pkg = out_dir / proto.relative_to(proto_dir).parent
        # Stub packages need __init__.py so mypy and wheel builds see them as packages.
        d = pkg
        while d != out_dir / "streamplane":
            (d / "__init__.py").touch(exist_ok=True)
            d = d.parent
    return protos


def _plugins() -> list[str]:
    """Point protoc at mypy-protobuf's plugins even when the venv is not on PATH."""
    found = []
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        path = Path(sys.executable).parent / name
        located = str(path) if path.exists() else shutil.which(name)
        if located:
            found.append(f"--plugin={name}={located}")
    return found


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    for p in generate(root):
        print(f"generated stubs for {p.relative_to(root)}")
