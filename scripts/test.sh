#!/usr/bin/env bash
# The test command (README, and what CI runs): complete on a fresh machine by itself.
# 1. system packages the tests use, when missing (virtual microphone, speech fixtures, offline ASR)
# 2. npm packages (which bring the pinned Node 24 and build dist)
# 3. type-check, then every test
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh audio offline

if [[ ! -x node_modules/.bin/node || ! -d dist || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

# npx puts node_modules/.bin first on PATH, so everything below runs on the pinned Node 24.
npx tsc -p tsconfig.json --noEmit
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI reads: "N passed, N failed".
npx node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + (r.numTodoTests || 0);
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" 2>/dev/null || true
rm -f "$report"
exit "$status"
