# Booting Debian systems with `systemd-nspawn --boot` for the tests, and running commands in
# them: shared by tests/vm/run (one machine) and tests/fleet/run (four, on a private network).
# Source it; it defines functions and the arrays they keep, and runs nothing.
#
#   machine_boot NAME ROOT [nspawn options...]   boots ROOT as NAME, waits for its systemd
#   machine_start NAME ROOT [nspawn options...]  the same without the wait, and then
#   machine_wait_booted NAME                     the wait (several machines boot at once)
#   machine_run NAME SECS COMMAND...             runs COMMAND inside, bounded by SECS
#   machine_stop NAME                            powers it off (SIGKILL after 10 s)
#   machine_stop_all                             every machine still running, then cgroups
#
# Needs from the caller: log (prints a line), and optionally `remaining` (seconds left of the
# caller's total; machine_run never runs past it) and MACHINE_WRAP, a command that nspawn is
# started under (the fleet test: `ip netns exec NAMESPACE`, so that its bridge is found).

MACHINE_WRAP=()

declare -A MACHINE_PID=() MACHINE_LEADER=() MACHINE_LOG=() MACHINE_CGROUPS=()

# A cgroup of its own for each container, in every hierarchy that tracks processes (the
# cgroup2 one, and name=systemd on a hybrid host). With --keep-unit nspawn puts the container
# under the caller's cgroup; left in a shared one (on a host without systemd, the root), two
# containers share system.slice/..., and one's processes keep the other's units alive.
_machine_cgroups() {
    local name=$1 _ mnt type opts list=()
    while read -r _ mnt type opts _; do
        if [[ $type == cgroup2 ]] || [[ $type == cgroup && ,$opts, == *,name=systemd,* ]]; then
            list+=("$mnt/$name")
        fi
    done < /proc/self/mounts
    echo "${list[*]}"
}

# Boots ROOT with `systemd-nspawn --boot` as NAME and waits until its systemd has finished
# booting (`degraded` is left for the caller's checks). The console goes to
# ROOT/../NAME.console.log. Extra options go to nspawn (the VM test passes --private-network,
# the fleet test a bridge).
machine_boot() {
    machine_start "$@" && machine_wait_booted "$1"
}

machine_start() {
    local name=$1 root=$2; shift 2
    local log; log=$(dirname "$root")/$name.console.log
    MACHINE_LOG[$name]=$log
    MACHINE_CGROUPS[$name]=$(_machine_cgroups "bluegreen-$name-$$")
    : >> "$log"
    echo "=== boot $(date -u +%FT%TZ)" >> "$log"
    # --register=no --keep-unit: the host need not run systemd or machined.
    (
        for cg in ${MACHINE_CGROUPS[$name]}; do
            mkdir -p "$cg" && echo "$BASHPID" > "$cg/cgroup.procs"
        done
        exec "${MACHINE_WRAP[@]}" systemd-nspawn --boot --register=no --keep-unit "$@" \
            --machine="$name" --directory="$root" --console=read-only \
            --link-journal=no --resolv-conf=off --timezone=off
    ) >> "$log" 2>&1 < /dev/null &
    MACHINE_PID[$name]=$!
    # The container's PID 1 is nspawn's child once it has started.
    local leader=
    for _ in $(seq 300); do
        leader=$(pgrep -P "${MACHINE_PID[$name]}" 2>/dev/null | head -n1 || true)
        [[ -n $leader ]] && [[ $(cat "/proc/$leader/comm" 2>/dev/null) == systemd ]] && break
        leader=
        kill -0 "${MACHINE_PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $leader ]]; then
        tail -n 30 "$log" >&2
        log "$name: the container did not start"
        return 1
    fi
    MACHINE_LEADER[$name]=$leader
}

# Waits until NAME's systemd has finished booting; says in what state.
machine_wait_booted() {
    local name=$1 state=
    # The first calls may come before the container's systemd answers at all.
    for _ in $(seq 100); do
        state=$(machine_run "$name" 60 systemctl is-system-running --wait 2>/dev/null || true)
        [[ -n $state && $state != offline && $state != unknown ]] && break
        sleep 0.2
    done
    log "$name booted (pid ${MACHINE_LEADER[$name]}): ${state:-no answer}"
}

# Runs a command inside NAME, bounded by SECS and by what is left of the caller's total.
machine_run() {
    local name=$1 secs=$2; shift 2
    local leader=${MACHINE_LEADER[$name]:-}
    [[ -n $leader ]] || { log "$name is not running"; return 125; }
    if declare -F remaining >/dev/null; then
        local left; left=$(remaining)
        (( left > 0 )) || { log "out of time"; return 124; }
        (( secs < left )) || secs=$left
    fi
    timeout --kill-after=10 "$secs" \
        nsenter --target "$leader" --all \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# Powers NAME off however the run ends: SIGTERM makes nspawn ask the container's systemd for
# a poweroff; SIGKILL after 10 s. nspawn's mount namespace goes with it.
machine_stop() {
    local name=$1 pid=${MACHINE_PID[$1]:-}
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not power off in 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    unset "MACHINE_PID[$name]" "MACHINE_LEADER[$name]"
}

# Waits until NAME's nspawn has exited by itself (a reboot or poweroff from inside), up to
# SECS, and sets MACHINE_EXIT to nspawn's exit status (133 means "reboot requested"). Not in
# a subshell: only this shell can wait for its own children.
machine_wait_down() {
    local name=$1 secs=$2 pid=${MACHINE_PID[$1]:-}
    MACHINE_EXIT=0
    [[ -n $pid ]] || return 0
    for _ in $(seq $(( secs * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not go down in $secs s"
        machine_stop "$name"
        return 1
    fi
    wait "$pid" 2>/dev/null || MACHINE_EXIT=$?
    unset "MACHINE_PID[$name]" "MACHINE_LEADER[$name]"
}

# Stops every machine still running (in parallel), then removes their cgroups.
machine_stop_all() {
    local name pids=() cg
    for name in "${!MACHINE_PID[@]}"; do
        machine_stop "$name" &
        pids+=($!)
    done
    (( ${#pids[@]} == 0 )) || wait "${pids[@]}" 2>/dev/null || true
    MACHINE_PID=() MACHINE_LEADER=()
    for name in "${!MACHINE_CGROUPS[@]}"; do
        for cg in ${MACHINE_CGROUPS[$name]}; do
            [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
        done
    done
    return 0
}
