#!/usr/bin/env bash
# Builds the C++ core and its tests with AddressSanitizer + UndefinedBehaviorSanitizer (Debug, no
# Python extension) in a separate build folder and runs ctest; then builds the env pool's test with
# ThreadSanitizer and runs it. Exits non-zero on any failure: configure, build, a failing check, or
# a sanitizer report (halt/abort on the first one).
#
# Usage: cpp/tests/run_sanitized.sh [build dir, default build/asan]   (from anywhere in the repo)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
build="${1:-build/asan}"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

cmake -S . -B "$build" -DTRADER_SANITIZE=ON -DTRADER_BUILD_TESTS=ON -DTRADER_BUILD_PYTHON=OFF \
  -DCMAKE_BUILD_TYPE=Debug
cmake --build "$build" -j "$jobs"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd "$build" && ctest --output-on-failure --timeout 600)

cmake -S . -B "$build-tsan" -DTRADER_TSAN=ON -DTRADER_BUILD_TESTS=ON -DTRADER_BUILD_PYTHON=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build-tsan" -j "$jobs" --target test_env
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" "$build-tsan/test_env" python/trader/data/sample
