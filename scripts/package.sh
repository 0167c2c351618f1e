#!/usr/bin/env bash
# Builds Conduit's Debian package with cargo-deb and prints its path.
#
#   bash scripts/package.sh [--profile release|dev]
#
# release (the default) is what ships: LTO, one codegen unit. dev packages the test build, which
# is enough to check the package's layout and service (scripts/test-package.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
[ "${1:-}" = "--profile" ] && profile="$2"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package.sh: installing cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi
# dpkg-shlibdeps (Debian's dpkg-dev) turns the linked librte-* libraries into dependencies.
command -v dpkg-shlibdeps >/dev/null || { echo "package.sh: install dpkg-dev" >&2; exit 1; }
cargo build --profile "$profile" -p conduit -p perf --bins >&2
cargo deb -p conduit --no-build --profile "$profile" 2>&1 | tail -n 1
