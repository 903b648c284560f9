#!/usr/bin/env bash
# The test command (README, and what CI runs): complete on a fresh machine by itself.
# 1. system packages the tests use, when missing (virtual microphone, speech fixtures, offline ASR,
#    X11 tools for the paste/type outputs, chromium for the control panel's browser tests)
# 2. npm packages (which bring the pinned Node 24 and build dist)
# 3. type-check and lint, then every test: the microphone tests last and alone (one virtual mic, and
#    capture must not compete with a loaded CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh audio offline desktop browser

if [[ ! -x node_modules/.bin/node || ! -d dist || package-lock.json -nt node_modules/.package-lock.json ]]; then
  # Errors only: the system Node's engine warnings (EBADENGINE) do not apply to the pinned Node 24.
  npm ci --no-audit --no-fund --loglevel=error
fi

# npx puts node_modules/.bin first on PATH, so everything below runs on the pinned Node 24.
# A type error fails the run, but the tests still run and the closing line is still printed.
reports=$(mktemp -d)
status=0
typecheck=ok
npx tsc -p tsconfig.json --noEmit || { status=1; typecheck=failed; }
lint=ok
npx eslint . || { status=1; lint=failed; }
# One format for every file (`npm run format` rewrites them): a diff in review is never about style.
npx prettier --check --log-level warn . || { status=1; lint=failed; }
npx vitest run --exclude 'test/audio/**' --reporter=default --reporter=json --outputFile.json="$reports/main.json" "$@" || status=$?
if [[ $# -eq 0 ]]; then
  npx vitest run test/audio --no-file-parallelism --reporter=default --reporter=json --outputFile.json="$reports/audio.json" || status=$?
fi
# One plain closing line that any CI reads: "N passed, N failed".
KOTO_TYPECHECK=$typecheck KOTO_LINT=$lint npx node -e '
  let passed = 0, failed = 0, skipped = 0;
  for (const file of process.argv.slice(1)) {
    try {
      const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
      passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests || 0);
    } catch { failed += 1; }
  }
  const typecheck = process.env.KOTO_TYPECHECK === "failed" ? " (type-check failed)" : "";
  const lint = process.env.KOTO_LINT === "failed" ? " (lint failed)" : "";
  console.log(`tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : "") + typecheck + lint);
' "$reports"/*.json
rm -rf "$reports"
exit "$status"
