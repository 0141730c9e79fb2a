#!/bin/bash
# Recorded for issue 14 (no behaviour change): run from anywhere; /work/wt-before is a worktree of 54a292a.
# Old tree (54a292a) vs new (main), bench_daemon alternating, same machine, same minutes.
for r in 1 2 3; do
  for t in before main; do
    d=/work/wt-$t; [ $t = main ] && d=/work/main
    (cd $d && PYTHONPATH=$d /work/main/.venv/bin/python benchmarks/bench_daemon.py --clip /work/shared/data/single_face.mp4 --seconds 8 --json /tmp/q/ab-$t-$r.json > /tmp/q/ab-$t-$r.txt 2>&1)
  done
done
echo done
