#!/usr/bin/env bash
# What a user sees in TensorBoard, as a PNG: serve LOGDIR (or a --logdir_spec value), open TAB
# in headless Chromium (Debian: apt-get install -y chromium), screenshot it.
#   scripts/tensorboard_screenshot.sh outputs/ hparams.png            # the HParams tab
#   scripts/tensorboard_screenshot.sh outputs/ scalars.png scalars 1600x1400
#   SPEC=1 scripts/tensorboard_screenshot.sh runs:outputs,store:/shared/store scalars.png scalars
set -euo pipefail
LOGDIR=${1:?logdir}; OUT=${2:?out.png}; TAB=${3:-hparams}; SIZE=${4:-1600x1000}
HERE="$(cd "$(dirname "$0")/.." && pwd)"
TB="${TENSORBOARD:-$HERE/.venv/bin/tensorboard}"
PORT=${PORT:-$((6100 + RANDOM % 800))}
FLAG=--logdir; [ "${SPEC:-0}" = 1 ] && FLAG=--logdir_spec
"$TB" "$FLAG" "$LOGDIR" --port "$PORT" --host 127.0.0.1 >/dev/null 2>&1 &
TB_PID=$!
PROFILE=$(mktemp -d)
trap 'kill "$TB_PID" 2>/dev/null || true; rm -rf "$PROFILE"' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/data/runs" >/dev/null && break; sleep 1; done
sleep 5  # let it load the event files
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$PROFILE" --window-size="${SIZE/x/,}" \
  --virtual-time-budget=30000 --screenshot="$OUT" "http://127.0.0.1:$PORT/#$TAB" >/dev/null 2>&1
echo "$OUT"
