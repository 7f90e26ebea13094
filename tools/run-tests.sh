#!/usr/bin/env bash
# Runs every test project and ends with one plain summary line ("Tests: N passed, N failed, N skipped")
# summed over the test assemblies, so CI reads the totals. Exit code is dotnet test's.
set -uo pipefail
config=${1:-Release}
cd "$(dirname "$0")/.."
log=$(mktemp)
dotnet test EdgeQuant.sln -c "$config" --no-build --nologo "${@:2}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
read -r passed failed skipped < <(awk '
  /(Passed|Failed)! +- +Failed:/ {
    for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
  }
  END { print p+0, f+0, s+0 }' "$log")
rm -f "$log"
echo
echo "Tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
exit "$rc"
