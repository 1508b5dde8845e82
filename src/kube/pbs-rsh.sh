#!/bin/sh
# pbsimage's remote shell for MPI launchers: Open MPI's plm_rsh_agent and Hydra's
# HYDRA_LAUNCHER_EXEC point here. It is ssh to a sister node's sshd (the job's key, its port,
# no host-key prompts) that carries the launcher's PATH and LD_LIBRARY_PATH to the remote
# command, as TORQUE's task manager carries the job's environment: the sister's sshd starts
# commands with its default PATH, where `module load` never put Open MPI's orted.
#
#   PBSIMAGE_SSH_PORT  the sisters' sshd port
#   PBSIMAGE_SSH_DIR   the job's ssh directory (id_rsa)
#
# Called as ssh is: [ssh options] host command words...; the words are joined with spaces,
# as ssh joins them.
set -eu

port=${PBSIMAGE_SSH_PORT:-2222}
dir=${PBSIMAGE_SSH_DIR:-${HOME:-/}/.ssh}

# 'quoted' for the remote shell.
quote() {
    q= s=$1
    while :; do
        case $s in
            *\'*) q="$q${s%%\'*}'\\''"; s=${s#*\'} ;;
            *) q="$q$s"; break ;;
        esac
    done
    printf "'%s'" "$q"
}

# The options before the host name stay ssh's (Open MPI's plm_rsh_args, Hydra's -x).
count=$#
host=
cmd=
while [ "$count" -gt 0 ]; do
    a=$1
    shift
    count=$((count - 1))
    if [ -n "$host" ]; then
        cmd="$cmd $a"
        continue
    fi
    case $a in
        -[BbcDEeFIiJLlmOoPpQRSWw])
            [ "$count" -gt 0 ] || { echo "pbs-rsh: option $a needs a value" >&2; exit 255; }
            set -- "$@" "$a" "$1"
            shift
            count=$((count - 1))
            ;;
        -*) set -- "$@" "$a" ;;
        *) host=$a ;;
    esac
done
[ -n "$host" ] || { echo "pbs-rsh: no host name given" >&2; exit 255; }

exec ssh -F /dev/null -p "$port" -i "$dir/id_rsa" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ConnectionAttempts=10 "$@" "$host" \
    "export PATH=$(quote "$PATH") LD_LIBRARY_PATH=$(quote "${LD_LIBRARY_PATH:-}");$cmd"
