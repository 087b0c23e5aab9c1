#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine for the integration test.
#
#   eval "$(tests/slurm/start.sh DIR)"   # prints `export SLURM_CONF=...`
#
# Needs root and Debian's slurm-wlm + munge. Everything (config, spool, logs) lives in
# DIR, linked from /etc/slurm; stop.sh DIR tears it down. Accounting is off, so sacct has no data: the test
# profile queries job status with squeue instead. A fake GPU (a character device made
# with mknod and declared as gres) makes gpu=1 jobs schedulable.
set -euo pipefail
dir=$(realpath -m "${1:?usage: start.sh DIR}")
mkdir -p "$dir"/{spool/ctld,spool/d,log,dev}
host=$(hostname -s)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cpus=$(nproc)

# A character device with the NVIDIA major number: Slurm only needs the file to exist.
[ -e "$dir/dev/nvidia0" ] || mknod "$dir/dev/nvidia0" c 195 0

cat > "$dir/slurm.conf" <<CONF
ClusterName=microgen-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
GresTypes=gpu
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF
echo "NodeName=$host Name=gpu File=$dir/dev/nvidia0" > "$dir/gres.conf"

# munge: reuse the packaged key; run the daemon as root with its own socket dir.
mkdir -p /run/munge
chown munge:munge /run/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
fi

# Job steps (srun inside a batch job) do not see SLURM_CONF from the submitting shell and
# fall back to the default location: link the test config there.
mkdir -p /etc/slurm
for f in slurm.conf gres.conf; do ln -sfn "$dir/$f" "/etc/slurm/$f"; done

export SLURM_CONF="$dir/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"

for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up; see $dir/log" >&2
exit 1
