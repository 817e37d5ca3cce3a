# shellcheck shell=bash
# The one build the tests and the contract check run. Sourced by scripts/test and
# scripts/contract.

# Every target of the workspace (binaries, tests, examples, benches) in one cargo invocation:
# one feature resolution for all of them. Built apart, the binaries and the tests resolve
# different features of the crates they share (the tests' dev-dependencies add some), and
# about thirty crates, the services among them, are compiled twice. With
# RUSTC_WORKSPACE_WRAPPER=clippy-driver (as .ci/run sets it), this compilation is also
# clippy's.
build_all_targets() {
  cargo build --workspace --all-targets --locked
}
