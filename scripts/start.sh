#!/usr/bin/env bash
# Koto's main job, set up from scratch: dictate the bundled sample (or the files you pass)
# through the whole pipeline — ASR, correction, output to stdout.
#   no OPENAI_API_KEY  → the offline default (pocketsphinx + the local corrector), installed when missing
#   OPENAI_API_KEY set → OpenAI (or any compatible server at OPENAI_BASE_URL)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${OPENAI_API_KEY:-} ]]; then
  bash scripts/system-deps.sh offline
fi
if [[ ! -x node_modules/.bin/node || ! -d dist || package-lock.json -nt node_modules/.package-lock.json ]]; then
  # One line instead of npm's: the system Node's engine warnings (EBADENGINE) are beside the
  # point (the pinned Node 24 runs Koto), and the build banner says nothing to a user. Errors stay.
  echo 'koto: first run: installing packages (npm ci)' >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
if [[ $# -eq 0 ]]; then
  set -- samples/*.wav
fi
# The pinned Node 24 (what `npx koto` uses), without npm's engine warnings about the system Node.
exec node_modules/.bin/node bin/koto.js run "$@"
