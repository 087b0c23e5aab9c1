#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by start.sh DIR.
set -u
dir=$(realpath -m "${1:?usage: stop.sh DIR}")
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 1
for f in slurm.conf gres.conf; do
  [ "$(readlink /etc/slurm/$f)" = "$dir/$f" ] && rm -f "/etc/slurm/$f"
done
exit 0
