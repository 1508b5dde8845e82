#!/bin/sh
# pbsimage job wrapper: the fixed entrypoint of every pbsimage job container.
#
# Everything job-specific arrives in the environment, set by the manifest pbsimage emits. Values
# are only ever used as data (file names, word lists); nothing here evaluates them as code.
#
#   PBSIMAGE_SCRIPT      the job script inside the image (required)
#   PBSIMAGE_SEED        the job's files in the image, copied into PBS_O_WORKDIR (an emptyDir)
#                        before the job starts
#   PBSIMAGE_CHDIR       the directory to start the job in (-d), made below PBS_O_WORKDIR
#   PBSIMAGE_COLLECT     1: when the job ends, copy what it made or changed in PBS_O_WORKDIR
#                        to <output>/<name>.<jobid>/, where the default -o/-e files go too
#   PBSIMAGE_SHELL       interpreter words (-S, the shebang, or the configured default)
#   PBSIMAGE_ARGS        script arguments (-F), split on white space, never globbed
#   PBSIMAGE_OUTPUT_DIR  the output volume; without it output goes to the container log
#   PBSIMAGE_STDOUT/ERR  -o/-e paths; a trailing / means "default name in this directory"
#   PBSIMAGE_JOIN        oe | eo (-j)
#   PBSIMAGE_UMASK       octal umask (-W umask=...)
#   PBSIMAGE_ARRAY       array ranges start-end:step,... ; JOB_COMPLETION_INDEX picks one
#   PBSIMAGE_PPN_LIST    slots per node, for multi-node jobs (with HOST_PREFIX, SUBDOMAIN,
#                        or NODES: the nodes' host names, comma-separated, node 0 first)
#   PBSIMAGE_ROLE        launcher | worker; default: node 0 (JOB_COMPLETION_INDEX) launches
#   PBSIMAGE_SISTER      what a worker does: sleep (the default) or sshd (the launcher's
#                        mpirun reaches it with the job's key in PBSIMAGE_SSH_DIR, on
#                        PBSIMAGE_SSH_PORT, through the remote shell pbs-rsh)
#   PBSIMAGE_ARRAY_INDEX in a JobSet: the array element (the replicated Job's index)
set -eu

script=${PBSIMAGE_SCRIPT:?PBSIMAGE_SCRIPT is not set: run this container from a pbsimage manifest}
shell=${PBSIMAGE_SHELL:-/bin/sh}
index=${JOB_COMPLETION_INDEX:-0}
tmp=${TMPDIR:-/tmp}

if [ -z "${PBS_JOBID:-}" ]; then
    PBS_JOBID=local
    [ -r /proc/sys/kernel/hostname ] && read -r PBS_JOBID </proc/sys/kernel/hostname
fi
: "${PBS_JOBNAME:=job}"
export PBS_JOBID PBS_JOBNAME
export PBS_ENVIRONMENT=PBS_BATCH
[ -n "${PBSIMAGE_UMASK:-}" ] && umask "$PBSIMAGE_UMASK"

# Array element: map the completion index (or, in a JobSet, the replicated Job's index: the
# completion index is then the node) onto the PBS array id.
element=${PBSIMAGE_ARRAY_INDEX:-$index}
if [ -n "${PBSIMAGE_ARRAY:-}" ]; then
    k=$element
    saved_ifs=$IFS
    IFS=,
    for range in $PBSIMAGE_ARRAY; do
        start=${range%%-*}
        rest=${range#*-}
        end=${rest%%:*}
        step=${rest#*:}
        n=$(( (end - start) / step + 1 ))
        if [ "$k" -lt "$n" ]; then
            PBS_ARRAYID=$(( start + k * step ))
            break
        fi
        k=$(( k - n ))
    done
    IFS=$saved_ifs
    : "${PBS_ARRAYID:?index $element is outside the job array}"
    PBS_ARRAY_INDEX=$PBS_ARRAYID
    export PBS_ARRAYID PBS_ARRAY_INDEX
fi

# The working directory: a writable copy of the job's files (the root filesystem may be
# read-only). cp -p keeps modes and times; owners become the job user's.
work=${PBS_O_WORKDIR:-}
seed=${PBSIMAGE_SEED:-}
if [ -n "$seed" ] && [ -n "$work" ] && [ "$seed" != "$work" ] && [ -d "$seed" ]; then
    if ! cp -Rp "$seed/." "$work/"; then
        echo "pbsimage: cannot copy the job's files from $seed into its working directory $work" >&2
        exit 1
    fi
else
    seed=
fi
# -d relative to the working directory: made, then entered.
if [ -n "${PBSIMAGE_CHDIR:-}" ]; then
    mkdir -p "$PBSIMAGE_CHDIR" && cd "$PBSIMAGE_CHDIR" || {
        echo "pbsimage: cannot enter the job's directory $PBSIMAGE_CHDIR (-d)" >&2
        exit 1
    }
fi

# `module` in a non-login bash, as on the cluster's compute nodes: environment-modules'
# profile script (or Lmod's, which sets its MODULEPATH too), read by bash at start through
# BASH_ENV.
if [ -z "${BASH_ENV:-}" ]; then
    for init in /etc/profile.d/modules.sh /usr/share/Modules/init/bash \
        /usr/share/lmod/lmod/init/profile; do
        if [ -r "$init" ]; then
            BASH_ENV=$init
            export BASH_ENV
            break
        fi
    done
fi

# PBS_NODEFILE: one line per slot. (TMPDIR is an emptyDir; no mkdir needed or assumed.)
[ -d "$tmp" ] || tmp=/tmp
nodefile=$tmp/pbs_nodefile
: >"$nodefile"
if [ -n "${PBSIMAGE_PPN_LIST:-}" ]; then
    : >"$nodefile.openmpi"
    : >"$nodefile.hydra"
    i=0
    saved_ifs=$IFS
    IFS=,
    prefix=${PBSIMAGE_HOST_PREFIX:-}
    [ -n "${PBSIMAGE_ARRAY_INDEX:-}" ] && prefix=$prefix-$PBSIMAGE_ARRAY_INDEX
    set -f
    # shellcheck disable=SC2086 # the node list is split on commas
    set -- ${PBSIMAGE_NODES:-}
    set +f
    for ppn in $PBSIMAGE_PPN_LIST; do
        if [ $# -gt 0 ]; then
            node=$1
            shift
        else
            node=$prefix-$i.${PBSIMAGE_SUBDOMAIN:-}
        fi
        j=0
        while [ "$j" -lt "$ppn" ]; do
            printf '%s\n' "$node" >>"$nodefile"
            j=$(( j + 1 ))
        done
        printf '%s slots=%s\n' "$node" "$ppn" >>"$nodefile.openmpi"
        printf '%s:%s\n' "$node" "$ppn" >>"$nodefile.hydra"
        i=$(( i + 1 ))
    done
    IFS=$saved_ifs
    PBS_NODENUM=$index
    # mpirun finds the job's nodes as under PBS (where it asks TORQUE's task manager): the
    # default host files of Open MPI and Hydra list them with their slots (Open MPI counts a
    # host listed once as one slot per core), and host names keep their domain (the
    # headless Service's name is what resolves).
    : "${OMPI_MCA_orte_default_hostfile:=$nodefile.openmpi}" "${OMPI_MCA_orte_keep_fqdn_hostnames:=true}"
    : "${HYDRA_HOST_FILE:=$nodefile.hydra}"
    export OMPI_MCA_orte_default_hostfile OMPI_MCA_orte_keep_fqdn_hostnames HYDRA_HOST_FILE
else
    host=localhost
    [ -r /proc/sys/kernel/hostname ] && read -r host </proc/sys/kernel/hostname
    j=0
    while [ "$j" -lt "${PBS_NP:-1}" ]; do
        printf '%s\n' "$host" >>"$nodefile"
        j=$(( j + 1 ))
    done
    PBS_NODENUM=0
    # A single-node job starts its MPI ranks on its own node only: Open MPI's isolated
    # launcher and Hydra's fork launcher (Open MPI's ssh launcher refuses to start when the
    # image has no ssh, though it would never need it here).
    : "${OMPI_MCA_plm:=isolated}" "${HYDRA_LAUNCHER:=fork}"
    export OMPI_MCA_plm HYDRA_LAUNCHER
fi
PBS_NODEFILE=$nodefile
export PBS_NODEFILE PBS_NODENUM

# Sister nodes of a multi-node job stay up for the launcher (mpirun) of node 0; the Job's
# success policy (or the MPI Operator) ends them when the launcher ends.
role=${PBSIMAGE_ROLE:-}
if [ -z "$role" ]; then
    role=launcher
    [ -n "${PBSIMAGE_PPN_LIST:-}" ] && [ "$index" != 0 ] && role=worker
fi
if [ "$role" = worker ] && [ "${PBSIMAGE_SISTER:-sleep}" = sshd ]; then
    # A non-root sshd configured on its command line (the image needs no sshd_config): the
    # job's key is its host key and the only key it lets in.
    ssh_dir=${PBSIMAGE_SSH_DIR:?PBSIMAGE_SSH_DIR is not set: the worker has no ssh key}
    [ -x /usr/sbin/sshd ] || { echo "pbsimage: this worker needs /usr/sbin/sshd (openssh-server) in the image" >&2; exit 1; }
    [ -r "$ssh_dir/id_rsa" ] || { echo "pbsimage: cannot read the job's ssh key $ssh_dir/id_rsa" >&2; exit 1; }
    exec /usr/sbin/sshd -D -e -f /dev/null -o "Port=${PBSIMAGE_SSH_PORT:-2222}" \
        -o "HostKey=$ssh_dir/id_rsa" -o "AuthorizedKeysFile=$ssh_dir/authorized_keys" \
        -o "PidFile=$tmp/sshd.pid" -o StrictModes=no -o PasswordAuthentication=no \
        -o KbdInteractiveAuthentication=no -o UsePAM=no -o PermitUserEnvironment=no \
        -o X11Forwarding=no -o AllowTcpForwarding=no
fi
if [ "$role" = worker ]; then
    command -v sleep >/dev/null || { echo "pbsimage: sister nodes need sleep (coreutils) in the image" >&2; exit 1; }
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $! || true
    done
fi

# Output files, as PBS names them. A missing directory is made; a path that cannot be
# written leaves that stream on the container log and the job runs anyway: the problem is
# reported on the container log's stderr when the job ends, as PBS reports a failed copy-out.
problems=
writable() {
    case $1 in */*) [ -d "${1%/*}" ] || mkdir -p "${1%/*}" 2>/dev/null ;; esac
    (exec 4>>"$1") 2>/dev/null
}
exec 3>&2
collect=
if [ -n "${PBSIMAGE_OUTPUT_DIR:-}" ]; then
    seq=$PBS_JOBID
    [ -n "${PBS_ARRAYID:-}" ] && seq=$PBS_JOBID-$PBS_ARRAYID
    defaults=$PBSIMAGE_OUTPUT_DIR/
    if [ "${PBSIMAGE_COLLECT:-}" = 1 ] && [ -n "$seed" ]; then
        collect=$PBSIMAGE_OUTPUT_DIR/$PBS_JOBNAME.$seq
        defaults=$collect/
    fi
    out=${PBSIMAGE_STDOUT:-$defaults}
    err=${PBSIMAGE_STDERR:-$defaults}
    case $out in */) out=$out$PBS_JOBNAME.o$seq ;; esac
    case $err in */) err=$err$PBS_JOBNAME.e$seq ;; esac
    join=${PBSIMAGE_JOIN:-n}
    if [ "$join" != eo ] && ! writable "$out"; then
        problems="${problems}pbsimage: cannot write the output file $out: standard output went to the container log
"
        out=
    fi
    if [ "$join" != oe ] && ! writable "$err"; then
        problems="${problems}pbsimage: cannot write the error file $err: standard error went to the container log
"
        err=
    fi
    case $join in
        oe) if [ -n "$out" ]; then exec >"$out" 2>&1; fi ;;
        eo) if [ -n "$err" ]; then exec 2>"$err" 1>&2; fi ;;
        *)
            if [ -n "$out" ]; then exec >"$out"; fi
            if [ -n "$err" ]; then exec 2>"$err"; fi
            ;;
    esac
fi

# Stage-out: what the job made or changed in its working directory (not in the image's copy,
# or newer than it) goes to $collect, directories kept. Never fails the job.
collect_dir() {
    for f in "$work/$1"* "$work/$1".[!.]* "$work/$1"..?*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        rel=${f#"$work/"}
        if [ -d "$f" ] && [ ! -L "$f" ]; then
            collect_dir "$rel/"
        elif { [ ! -e "$seed/$rel" ] && [ ! -L "$seed/$rel" ]; } || [ "$f" -nt "$seed/$rel" ]; then
            case $rel in */*) d=$collect/${rel%/*} ;; *) d=$collect ;; esac
            if ! { mkdir -p "$d" && cp -P "$f" "$d/"; } 2>/dev/null; then
                problems="${problems}pbsimage: cannot copy $rel to $collect
"
            fi
        fi
    done
}

set -f
# shellcheck disable=SC2086 # word splitting of the interpreter and arguments is intended
$shell "$script" ${PBSIMAGE_ARGS:-} 3>&- &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do
    status=0
    wait "$child" || status=$?
done
set +f
if [ -n "$collect" ]; then
    collect_dir ""
fi
if [ "$status" -gt 128 ] && [ "$status" -lt 160 ]; then
    why=
    case $((status - 128)) in
        9) why=" (SIGKILL: over the memory limit, or stopped at the deadline)" ;;
        15) why=" (SIGTERM: deleted, or stopped at the deadline)" ;;
    esac
    problems="${problems}pbsimage: job $PBS_JOBNAME ($PBS_JOBID) was killed by signal $((status - 128))$why; exit status $status
"
fi
printf '%s' "$problems" >&3
exit "$status"
