#!/usr/bin/env bash
# The Slurm scripts (scripts/slurm/) on a real one-node Slurm started here, in a temporary folder:
#   a. job arrays of 3 shards + the dependent merge (scripts/slurm/submit-array): wild with its CI
#      on a data file, wild --no-ci and threshold (both checkpointed), and a long wild --no-ci
#      whose shard 1 is requeued (scontrol requeue) after its first checkpoint and resumes from it;
#   b. scripts/slurm/mpi.sbatch with 3 ranks: the long run by srun --mpi=pmix, requeued once
#      after its first checkpoint, and threshold by mpirun;
# each result compared with the single process's output (JSON, without timing, threads, backend).
#
#   tests/slurm/test_slurm.sh [PANELBOOT]     (default: build/panelboot of this checkout)
#
# Exit 0: passed, or "SKIPPED: <reason>" when Slurm cannot be started here (not root, Slurm,
# munge or python3 missing, the daemons do not come up); 1: a failure. Environment:
#   PB_TEST_MPI=0             skip part b (a panelboot built without MPI)
#   PB_TEST_SLURM_REQUIRED=1  a reason to skip is a failure instead (CI where Slurm is installed)
#   PB_TEST_KEEP=1            keep the temporary folder (its logs) and print its path
#   PB_TEST_TIMEOUT=150       seconds after which the test fails (and cleans up) by itself, before
#                             a harness's timeout could kill it with no cleanup
# The daemons are munged (its own key and socket), slurmctld and slurmd, all as root, with their
# configuration, state, spool, logs and sockets in the temporary folder; they, and every process
# they started, are stopped on exit (also on failure, ^C or SIGTERM), and the folder is removed.
# Needs (Debian): slurm-wlm munge openmpi-bin python3. Takes about 30 s.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scripts=$root/scripts/slurm
pb=${1:-$root/build/panelboot}
t0=$SECONDS

skip() {
  if [ "${PB_TEST_SLURM_REQUIRED:-0}" = 1 ]; then echo "FAIL: cannot run (PB_TEST_SLURM_REQUIRED=1): $*" >&2; exit 1; fi
  echo "SKIPPED: $*"
  exit 0
}
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "test_slurm [$((SECONDS - t0))s]: $*"; }

# ---- prerequisites ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "not root (slurmd must run as root)"
for c in munged slurmctld slurmd sbatch squeue sinfo scontrol scancel python3; do
  command -v "$c" >/dev/null || skip "$c not found (Debian: apt-get install slurm-wlm munge openmpi-bin)"
done
[ -x "$pb" ] || fail "no panelboot binary at $pb"

# ---- the temporary folder and the cleanup ----------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pbslurm.XXXXXX")
chmod 711 "$tmp"   # munged wants every folder above its socket searchable by all
conf=$tmp/slurm.conf
daemons=()          # pids of the daemons started here
refs=()             # pids of the single-process reference runs
watchdog=""         # pid of the PB_TEST_TIMEOUT timer

# Every process started by the daemons (slurmstepd, the jobs, slurmscriptd) has SLURM_CONF=$conf
# in its environment: the pids of those still running.
ours() {
  local e p
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}; p=${p%/environ}
    [ "$p" = $$ ] && continue
    tr '\0' '\n' 2>/dev/null <"$e" | grep -qxF "SLURM_CONF=$conf" && echo "$p"
  done
  return 0
}

cleanup() {
  local rc=$? p alive
  set +e
  trap - EXIT INT TERM
  if [ -f "$tmp/slurmctld.pid" ]; then   # cancel what still runs, give it a moment to end
    sl scancel --quiet --user=root 2>/dev/null
    for _ in $(seq 20); do [ -z "$(sl squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
  fi
  for p in "${daemons[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 20); do
    alive=0; for p in "${daemons[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.25
  done
  [ -n "$watchdog" ] && pkill -KILL -P "$watchdog"   # the timer's sleep, then the timer
  for p in "${daemons[@]}" $(ours) "${refs[@]}" $watchdog; do kill -KILL "$p" 2>/dev/null; done
  [ -f "$tmp/munge/munged.pid" ] && kill -TERM "$(cat "$tmp/munge/munged.pid")" 2>/dev/null
  wait 2>/dev/null
  if [ "${PB_TEST_KEEP:-0}" = 1 ]; then echo "test_slurm: kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "FAIL: interrupted (SIGTERM, or over PB_TEST_TIMEOUT=${PB_TEST_TIMEOUT:-150} s)" >&2; exit 143' TERM
# the timer: SIGTERM to this script, whose trap stops everything
{ sleep "${PB_TEST_TIMEOUT:-150}" && kill -TERM $$; } 2>/dev/null &
watchdog=$!

# Slurm commands talk to this Slurm; jobs get its TMPDIR (OpenMPI's session folders) and may run
# mpirun as root.
sl() {
  SLURM_CONF=$conf TMPDIR=$tmp/tmp OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_rmaps_base_oversubscribe=1 "$@"
}

# The tail of every log, for a failure's diagnosis (without munged's "Unauthorized credential"
# notes, which Slurm's restricted credentials cause all along).
logs() {
  local f
  for f in "$tmp"/log/* "$tmp"/work/*/slurm*.out; do
    [ -f "$f" ] && { echo "---- ${f#"$tmp"/}"; grep -v "Unauthorized credential" "$f" | tail -n 15; }
  done >&2
  return 0
}

# ---- start munged, slurmctld, slurmd ---------------------------------------------------------
mkdir -m 711 "$tmp/munge"
mkdir -p "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/tmp" "$tmp/bin" "$tmp/work"
# the jobs and the reference runs use one copy of the binary and its plugins (libpanelboot_mpi.so,
# found next to it), even if the build is redone meanwhile
cp "$pb" "$tmp/bin/panelboot"
for f in "$(dirname "$pb")"/libpanelboot_*.so; do [ -f "$f" ] && cp "$f" "$tmp/bin/"; done
pb=$tmp/bin/panelboot

dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$tmp/munge/munge.key"
munged --key-file="$tmp/munge/munge.key" --socket="$tmp/munge/munge.sock" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/munged.seed" --log-file="$tmp/log/munged.log" ||
  { logs; skip "munged did not start"; }

# two free TCP ports on localhost for slurmctld and slurmd (another Slurm may use 6817/6818)
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)

# One node of 4 CPUs whatever the machine has (config_overrides): 3 shards or 3 ranks at once.
# cred_expire=5: a requeued job may start again after 5 s (default 120 s); the schedulers look
# every 1-2 s (defaults 30 and 60 s). Job ids start at the port's thousands: two of these tests at
# once must not both have a job 17 (OpenMPI names shared-memory segments after the Slurm job id).
cat >"$conf" <<EOF
ClusterName=pbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.sock,cred_expire=5
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
TmpFS=$tmp/tmp
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
FirstJobId=$((ctld_port * 1000))
MailProg=/bin/true
SchedulerParameters=bf_interval=1,sched_interval=2
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=pbtest Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

SLURM_CONF=$conf slurmctld -D -f "$conf" >"$tmp/log/slurmctld.stdout" 2>&1 &
daemons+=($!)
SLURM_CONF=$conf slurmd -D -f "$conf" -N "$host" >"$tmp/log/slurmd.stdout" 2>&1 &
daemons+=($!)

up=no
for _ in $(seq 60); do   # 15 s
  [ "$(sl sinfo -h -n "$host" -o %T 2>/dev/null)" = idle ] && { up=yes; break; }
  for p in "${daemons[@]}"; do kill -0 "$p" 2>/dev/null || { logs; skip "a Slurm daemon exited at its start"; }; done
  sleep 0.25
done
[ $up = yes ] || { logs; skip "the Slurm node did not become idle within 15 s"; }
note "Slurm up: node $host idle (slurmctld port $ctld_port, slurmd port $slurmd_port)"

# ---- helpers ---------------------------------------------------------------------------------
# json_same A B: the two JSON reports are the same without timing, threads and backend (which
# differ between any two runs); prints the first difference.
json_same() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in ("timing", "threads", "backend")}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
def first_diff(a, b, path="$"):
    if type(a) != type(b):
        return path
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}"
            d = first_diff(a[k], b[k], f"{path}.{k}")
            if d: return d
        return None
    if isinstance(a, list):
        if len(a) != len(b): return f"{path} (length)"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, f"{path}[{i}]")
            if d: return d
        return None
    return None if json.dumps(a) == json.dumps(b) else path
a, b = (strip(json.load(open(f))) for f in sys.argv[1:3])
if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
    print(f"differs at {first_diff(a, b)}: {sys.argv[1]} vs {sys.argv[2]}")
    sys.exit(1)
EOF
}

# state JOBID: the job's state (an array's tasks: one line each), from slurmctld's memory
state() { sl squeue -h -r -t all -j "$1" -o %T 2>/dev/null | sort -u; }

# wait_done SECONDS JOBID...: waits until every job has ended; fails after SECONDS
wait_done() {
  local limit=$1 j s; shift
  local end=$((SECONDS + limit))
  while :; do
    local pending=0
    for j in "$@"; do
      s=$(state "$j")
      case $s in ""|*PENDING*|*RUNNING*|*CONFIGURING*|*COMPLETING*|*REQUEUE*|*SUSPENDED*|*RESIZING*) pending=1 ;; esac
    done
    [ $pending = 0 ] && return 0
    [ $SECONDS -lt $end ] || { logs; sl squeue -r -t all >&2; fail "jobs $* not done within $limit s"; }
    sleep 0.5
  done
}

# a run's single-process output, in the background: reference NAME ARGS...
reference() {
  local name=$1; shift
  (cd "$tmp/work" && exec "$pb" "$@" --output "$tmp/work/$name.single.json" 2>"$tmp/work/$name.single.err") &
  refs+=($!)
}

# submit NAME ARGS...: the array of 3 shards + merge for ARGS in work/NAME; sets ids[NAME]
declare -A ids=()
submit() {
  local name=$1 out; shift
  out=$(cd "$tmp/work" && PANELBOOT=$pb sl "$scripts/submit-array" -n 3 -d "$name" -r "$name/result.json" "$@") ||
    { logs; fail "submit-array $name: $out"; }
  ids[$name.array]=$(awk '$1 == "array" { sub(":", "", $3); print $3 }' <<<"$out")
  ids[$name.merge]=$(awk '$1 == "merge" { print $3 }' <<<"$out")
  [[ ${ids[$name.array]} =~ ^[0-9]+$ && ${ids[$name.merge]} =~ ^[0-9]+$ ]] || fail "submit-array printed: $out"
}

# check NAME RESULT [REF]: the job's RESULT equals the single run REF's output (default NAME)
check() {
  local name=$1 result=$2 ref=${3:-$1}
  [ -s "$result" ] || { logs; fail "$name: no result $result"; }
  json_same "$tmp/work/$ref.single.json" "$result" || { logs; fail "$name: not the single run's output"; }
  note "$name: the same as the single run"
}

# requeue_when_saved NAME CHECKPOINT JOB: requeues JOB (scontrol requeue) once CHECKPOINT is saved
requeue_when_saved() {
  local name=$1 cp=$2 job=$3
  for _ in $(seq 200); do [ -s "$cp" ] && break; sleep 0.1; done
  [ -s "$cp" ] || { logs; fail "$name: no checkpoint $cp within 20 s"; }
  sl scontrol requeue "$job" || { logs; fail "$name: scontrol requeue $job failed"; }
  note "$name: job $job requeued after its first checkpoint"
}

# resumed NAME LOG: LOG shows a restart that continued from the checkpoint
resumed() {
  grep -q "restart count 1" "$2" || { logs; fail "$1: the job was not restarted ($2)"; }
  grep -q "resuming from checkpoint" "$2" || { logs; fail "$1: the requeued job did not resume from its checkpoint"; }
  note "$1: the requeued job resumed from its checkpoint"
}

wild=(wild -f 'newqua ~ rgzn + urban | province + year' --cluster province --test 'rgzn = 0' --test 'urban = 0.1' --format json)
threshold=(threshold --panel 'province,year' -f 'newqua ~ urban + ind | province' --regime rgzn --threshold-var fin
           --thresholds 2 --B 60 --format json)
# a wild run of some seconds per shard (its task 1 is requeued while it runs)
long=("${wild[@]}" --B 9000000 --no-ci)

# ---- a. job arrays + merge -------------------------------------------------------------------
# ci reads a data file by a relative path (the jobs start in the submit folder, merge re-reads it)
cp "$root/tests/data/grunfeld_plm.csv" "$tmp/work/grunfeld.csv"
grunfeld=(wild --data grunfeld.csv -f 'inv ~ value + capital | firm + year' --cluster firm --test 'value = 0'
          --B 999 --format json)
reference ci "${grunfeld[@]}"
reference noci "${wild[@]}" --B 20000 --no-ci
reference threshold "${threshold[@]}"
reference long "${long[@]}"

submit long "${long[@]}"
submit ci "${grunfeld[@]}"
submit noci "${wild[@]}" --B 20000 --no-ci
submit threshold "${threshold[@]}"
note "submitted 4 arrays of 3 shards and their merges"

# requeue shard 1 of the long run once it has saved a checkpoint: it must resume from it
requeue_when_saved long "$tmp/work/long/checkpoint-1.json" "${ids[long.array]}_1"

for p in "${refs[@]}"; do wait "$p" || fail "a single-process reference run failed: $(cat "$tmp"/work/*.single.err)"; done
wait_done 60 "${ids[ci.merge]}" "${ids[noci.merge]}" "${ids[threshold.merge]}" "${ids[long.merge]}"
for name in ci noci threshold long; do
  s=$(state "${ids[$name.merge]}")
  [ "$s" = COMPLETED ] || { logs; fail "$name: the merge job ended $s (array: $(state "${ids[$name.array]}" | tr '\n' ' '))"; }
  check "$name" "$tmp/work/$name/result.json"
done
resumed long "$tmp/work/long/slurm-${ids[long.array]}_1.out"
ls "$tmp"/work/*/checkpoint-*.json >/dev/null 2>&1 && fail "checkpoints left behind: $(ls "$tmp"/work/*/checkpoint-*.json)"

# ---- b. MPI ----------------------------------------------------------------------------------
# The long wild run (requeued once after its first checkpoint) with srun --mpi=pmix, threshold with
# mpirun; the references are part a's single runs.
if [ "${PB_TEST_MPI:-1}" = 0 ]; then
  note "part b (MPI) skipped: PB_TEST_MPI=0"
else
  command -v mpirun >/dev/null || fail "mpirun not found (Debian: apt-get install openmpi-bin), or set PB_TEST_MPI=0"
  sl srun --mpi=list 2>&1 | grep -q pmix || fail "Slurm has no pmix MPI plugin (srun --mpi=list), or set PB_TEST_MPI=0"
  # mpi_job NAME LAUNCHER ARGS...: submits mpi.sbatch with 3 ranks; sets ids[NAME]
  mpi_job() {
    local name=$1 launcher=$2 id; shift 2
    mkdir -p "$tmp/work/$name"
    id=$(cd "$tmp/work" && PANELBOOT=$pb PB_OUT=$tmp/work/$name PB_RESULT=$tmp/work/$name/result.json \
      PB_LAUNCHER=$launcher sl sbatch --parsable --ntasks=3 --output="$tmp/work/$name/slurm.out" \
      "$scripts/mpi.sbatch" "$@") || { logs; fail "sbatch mpi.sbatch ($launcher) refused: $id"; }
    ids[$name]=${id%%;*}
  }
  mpi_job mpi_srun srun "${long[@]}"
  mpi_job mpi_mpirun mpirun "${threshold[@]}"
  note "submitted mpi.sbatch with 3 ranks (srun --mpi=pmix: the long run; mpirun: threshold)"
  requeue_when_saved mpi_srun "$tmp/work/mpi_srun/checkpoint.json" "${ids[mpi_srun]}"
  wait_done 60 "${ids[mpi_srun]}" "${ids[mpi_mpirun]}"
  for name in mpi_srun mpi_mpirun; do
    s=$(state "${ids[$name]}")
    [ "$s" = COMPLETED ] || { logs; fail "$name: the job ended $s"; }
    # rank 0 alone keeps the checkpoint: one line about it per start, not one per rank (as 3
    # unconnected processes, e.g. a build without MPI, would write)
    starts=$(grep -c "^mpi.sbatch: .* ranks on" "$tmp/work/$name/slurm.out")
    lines=$(grep -c "starting afresh\|resuming from checkpoint" "$tmp/work/$name/slurm.out")
    [ "$lines" = "$starts" ] ||
      { logs; fail "$name: $lines checkpoint lines for $starts start(s): the ranks ran unconnected (a build without MPI? PB_TEST_MPI=0 skips)"; }
  done
  check mpi_srun "$tmp/work/mpi_srun/result.json" long
  check mpi_mpirun "$tmp/work/mpi_mpirun/result.json" threshold
  resumed mpi_srun "$tmp/work/mpi_srun/slurm.out"
fi

note "PASSED"
