# shellcheck shell=bash
# Shared by scripts/setup and scripts/services: paths, logging, and naming the
# step that failed. Source it after setting LOG_TAG.

FRESHET_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRESHET_DATA_DIR=${FRESHET_DATA_DIR:-$FRESHET_REPO/.freshet}
# Postgres runs as another user and Kafka's configs hold the path: both need
# it absolute, whatever the caller's cwd.
[[ $FRESHET_DATA_DIR == /* ]] || FRESHET_DATA_DIR=$PWD/$FRESHET_DATA_DIR
# shellcheck disable=SC2034 # used by the scripts that source this file
FRESHET_KAFKA_LIBS=$FRESHET_DATA_DIR/kafka/libs

LOG_TAG=${LOG_TAG:-freshet}
STEP=""

# Logs go to stderr so that stdout stays machine-readable (`services env`).
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

# Name the step before doing it, so an unexpected failure (set -e) can say
# which step broke instead of just exiting.
step() { STEP=$*; log "$*"; }
on_err() {
  local rc=$?
  trap - ERR
  printf '[%s] ERROR: step failed (exit %s): %s\n' "$LOG_TAG" "$rc" "${STEP:-startup}" >&2
  exit "$rc"
}
set -E
trap on_err ERR

have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# Seconds since the epoch with milliseconds, for the timings we print.
now() { date +%s.%3N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
