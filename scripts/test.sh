#!/usr/bin/env bash
# The test command the README gives: every crate's unit, property and integration tests.
# Integration tests start the real binaries on 127.0.0.1 under both io drivers (io_uring, epoll).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
