#!/usr/bin/env bash
# The full reliability run behind docs/RELIABILITY.md: every fault in both modes, TRIALS trials each.
# Usage (as root, from the repo): bash bench/full_run.sh [TRIALS] [OUTDIR]
# Results: OUTDIR/<fault>-<mode>.json (rewritten after every trial) and OUTDIR/run.log.
set -u
TRIALS="${1:-20}"
OUT="${2:-bench/results}"
mkdir -p "$OUT"
FAULTS="$(.venv/bin/python -c 'from pgkeel.lab.faults import FAULTS; print(" ".join(FAULTS))')"
for fault in $FAULTS; do
  for mode in quorum async; do
    echo "== $(date -Is) $fault $mode $TRIALS trials" | tee -a "$OUT/run.log"
    .venv/bin/pgkeel bench failover --fault "$fault" --mode "$mode" --trials "$TRIALS" \
      --json "$OUT/$fault-$mode.json" 2>&1 | tee -a "$OUT/run.log"
  done
done
echo "== $(date -Is) done" | tee -a "$OUT/run.log"
