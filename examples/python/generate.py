"""Generates the Python client of wxauth from the repository's proto/ into ./gen.

    python generate.py            # then: python whoami.py <access token>
"""

import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"


def generate(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # grpc_tools ships the well-known types (google/protobuf/timestamp.proto).
    includes = str(pathlib.Path(protoc.__file__).parent / "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{includes}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO / "wxauth/v1/auth.proto"),
            str(PROTO / "wxauth/v1/errors.proto"),
        ]
    )
    if status != 0:
        sys.exit(f"protoc failed with status {status}")


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "gen")
