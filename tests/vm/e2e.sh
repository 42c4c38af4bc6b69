#!/usr/bin/env bash
# End-to-end test of the installed bluegreen package, run INSIDE a Debian 12 system (the
# nspawn container of tests/vm/run, or the Vagrant box) after provision.sh installed it.
#
#   e2e.sh before-reboot   install state, upgrade, restarts, bad configs, traffic flips,
#                          training races, burst, kill -9, a refused model
#   (reboot the system)
#   e2e.sh after-reboot    the active slot and model survived; remove, install, purge
#
# BLUEGREEN_DEB names the package; by default the newest in /root/vm (tests/vm/run) or
# /vagrant/target/debian (Vagrantfile). The upgrade installs a copy of it with a higher
# version (repacked here with dpkg-deb), so both runners test a real upgrade.
#
# Events that must lose no request (restart, upgrade, bad config, kill -9, a config change)
# run under 16 keep-alive and 8 `Connection: close` clients at once (wrk, with load.lua
# beside this script), and their PASS/FAIL line gives each kind's answers, failures and
# slowest answer.
#
# Every check prints one PASS or FAIL line, with its figures. Results of both phases are kept
# in /var/tmp/bluegreen-e2e (it survives the reboot); after-reboot ends with the total line
# "N passed, M failed". Exit status: 0 only if every check so far passed.
set -uo pipefail

phase=${1:-}
case $phase in before-reboot|after-reboot) ;; *) echo "usage: $0 before-reboot|after-reboot" >&2; exit 2 ;; esac

WORK=/var/tmp/bluegreen-e2e
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA=$HERE/load.lua
# The package provision.sh installed, reinstalled here to exercise the upgrade path.
DEB=${BLUEGREEN_DEB:-$(ls -t /root/vm/bluegreen_*.deb /vagrant/target/debian/bluegreen_*.deb 2>/dev/null | head -n1)}
RESULTS=$WORK/results
STATE=/var/lib/bluegreen
URL=http://127.0.0.1:8080
# The original demo's example row; its price is about 30.
ROW='[0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98]'
export BLUEGREEN_CONFIG=/etc/bluegreen/config.toml
cd /
mkdir -p "$WORK"
[[ $phase == before-reboot ]] && : > "$RESULTS"

# --- Reporting -------------------------------------------------------------------------------
now_ms() { date +%s%3N; }
pass() { echo "PASS  $*"; echo "PASS $*" >> "$RESULTS"; }
fail() { echo "FAIL  $*"; echo "FAIL $*" >> "$RESULTS"; }
info() { echo "      $*"; }
T0=$(date +%s%3N)
# A section's title, with the seconds since this phase started (the run's time is bounded).
section() { echo; echo "== $* (at $(( ($(now_ms) - T0) / 1000 )) s)"; }
# check NAME COMMAND...: PASS if the command succeeds; its output is shown on FAIL.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name"; printf '%s\n' "$out" | sed 's/^/      | /' | tail -n 20; fi
}
# wait_for SECONDS COMMAND...: polls every 100 ms until the command succeeds.
wait_for() {
    local secs=$1; shift
    local end=$(( $(now_ms) + secs * 1000 ))
    until "$@" >/dev/null 2>&1; do
        (( $(now_ms) < end )) || return 1
        sleep 0.1
    done
}

# --- Helpers over the system under test -----------------------------------------------------
status_json() { bluegreen status --json; }
active_slot() { status_json | jq -r '.active // empty'; }
slot_model() { status_json | jq -r --arg s "$1" '.slots[] | select(.slot == $s) | .model // empty'; }
newest_model() { status_json | jq -r '.newest_model // empty'; }
data_rows() { status_json | jq -r '.data_rows'; }
# POSTs the example row through NGINX: prints the HTTP status, keeps body and headers.
predict() {
    curl -s -m 5 -o "$WORK/predict.body" -D "$WORK/predict.head" -w '%{http_code}' \
        -H 'Content-Type: application/json' -d "{\"data\": [$ROW]}" "$URL/" 2>/dev/null
}
served() { curl -s -m 5 "$URL/readyz" | jq -r '"\(.slot) \(.model)"' 2>/dev/null; }
serves() { [[ $(served) == "$1 $2" ]]; }
unit_prop() { systemctl show -P "$2" "$1"; }
main_pid() { unit_prop "bluegreen@$1.service" MainPID; }
# True when nothing runs and nothing is asked for: no training, no deploy.
settled() {
    local u
    for u in bluegreen-data.service bluegreen-train.service bluegreen-deploy.service; do
        case $(systemctl is-active "$u") in activating|deactivating|reloading) return 1 ;; esac
    done
    [[ ! -e $STATE/run/train-requested && ! -e $STATE/run/deploy-requested ]]
}
wait_settled() { sleep 0.5; wait_for "${1:-60}" settled && sleep 0.3 && wait_for 10 settled; }
failed_units() {
    systemctl list-units --all --state=failed --plain --no-legend 'bluegreen*' | awk '{print $1}' | tr '\n' ' '
}
no_failed_units() { local f; f=$(failed_units); [[ -z $f ]] || { echo "failed: $f"; return 1; }; }
# The newest model is current: fewer than batch_size rows arrived after it.
model_is_current() {
    local j; j=$(status_json)
    [[ $(jq -r '.training_due' <<<"$j") == false ]] \
        || { echo "$j" | jq '{data_rows, newest_model, rows_since_newest, batch_size, training_due}'; return 1; }
}
newest_is_active() {
    local a n; a=$(active_slot); n=$(newest_model)
    [[ $(slot_model "$a") == "$n" ]] && serves "$a" "$n" || { echo "active $a serves $(served), newest $n"; return 1; }
}

# Load: 16 keep-alive and 8 `Connection: close` clients at once (wrk, load.lua), sending the
# example row through NGINX as fast as they are answered. load_start NAME starts them and
# lets them run for a second; load_stop stops them (after a second more) and sets
#   LOAD_FAILED   failed requests of both kinds: non-200 answers and socket errors
#   LOAD_FIGURES  "keep-alive: <answers> answers, <failed> failed (<non200> non-200, <socket
#                 errors> socket errors), slowest <ms> ms; close: ..."
LOAD_PIDS=()
load_start() {
    LOAD_NAME=$1
    wrk -t2 -c16 -d3600s --timeout 10s -s "$LUA" "$URL/" > "$WORK/$1.keepalive" 2>&1 &
    LOAD_PIDS=($!)
    wrk -t2 -c8 -d3600s --timeout 10s -H 'Connection: close' -s "$LUA" "$URL/" \
        > "$WORK/$1.close" 2>&1 &
    LOAD_PIDS+=($!)
    sleep 1
}
load_stop() {
    sleep 1
    kill -INT "${LOAD_PIDS[@]}" 2>/dev/null
    wait "${LOAD_PIDS[@]}" 2>/dev/null
    LOAD_PIDS=()
    LOAD_FAILED=0
    LOAD_FIGURES=
    local kind line failed
    for kind in keepalive close; do
        line=$(grep -h '^LOAD ' "$WORK/$LOAD_NAME.$kind")
        if [[ -z $line ]]; then
            LOAD_FAILED=$(( LOAD_FAILED + 1 ))
            LOAD_FIGURES+="$kind: wrk printed no summary ($(tail -n1 "$WORK/$LOAD_NAME.$kind")); "
            continue
        fi
        # requests= non200= connect= read= write= timeout= max_ms= p99_ms= codes=
        local requests non200 connect read write timeout max_ms p99_ms codes
        eval "$(sed 's/^LOAD //' <<<"$line")"
        failed=$(( non200 + connect + read + write + timeout ))
        LOAD_FAILED=$(( LOAD_FAILED + failed ))
        LOAD_FIGURES+="${kind/keepalive/keep-alive}: $requests answers, $failed failed"
        (( failed )) && LOAD_FIGURES+=" ($non200 non-200: $codes; $(( connect + read + write + timeout )) socket errors)"
        LOAD_FIGURES+=", slowest $max_ms ms; "
    done
    LOAD_FIGURES=${LOAD_FIGURES%; }
}
# Stops the load and reports whether "$1" lost no request.
load_verdict() {
    load_stop
    if (( LOAD_FAILED == 0 )); then
        pass "$1: 0 failed requests ($LOAD_FIGURES)"
    else
        fail "$1: $LOAD_FAILED failed requests ($LOAD_FIGURES)"
    fi
}
# NGINX's worker pids: unchanged when NGINX was not reloaded.
nginx_workers() { pgrep -P "$(cat /run/nginx.pid)" | sort -n | tr '\n' ' '; }
same_workers() { [[ $(nginx_workers) == "$1" ]] || { echo "workers: $1 -> $(nginx_workers)"; return 1; }; }
# The slot's STATUS= line names its role: "active", or "resting".
status_role() {
    local text; text=$(unit_prop "bluegreen@$1.service" StatusText)
    case $2 in
        active) [[ $text =~ (^|[^a-z])active ]] ;;
        resting) [[ $text == *resting* ]] ;;
    esac || { echo "bluegreen@$1.service: \"$text\""; return 1; }
}
roles_shown() {
    local active=$1 resting; [[ $1 == blue ]] && resting=green || resting=blue
    status_role "$active" active && status_role "$resting" resting \
        && systemctl status --no-pager --lines=0 "bluegreen@$active.service" | grep -E 'Status: .*active'
}

# Version number of a model ("v0012-20261126T210305Z" -> 12).
version_number() { local v=${1#v}; v=${v%%-*}; echo $((10#${v:-0})); }
installed() {
    local st; st=$(dpkg-query -W -f='${Status}' bluegreen 2>&1)
    [[ $st == "install ok installed" ]] || { echo "$st"; return 1; }
}
is_blue_active() { [[ $(active_slot) == blue ]]; }
readyz_on() { curl -sf -m 5 "$URL/readyz" | jq -e --arg s "$1" '.ready == true and .slot == $s'; }
system_running() { [[ $(systemctl is-system-running) == running ]] || { systemctl --failed --no-pager; return 1; }; }
# What NGINX answers for the example row must be "200 <model>".
answers_with() {
    local got
    got=$(curl -s -m 5 -o /dev/null -w '%{http_code} %header{x-model-version}' \
        -H 'Content-Type: application/json' -d "{\"data\": [$ROW]}" "$URL/")
    [[ $got == "200 $1" ]] || { echo "got: $got"; return 1; }
}
# restarted_in_order SLOT1 OLDPID1 SLOT2 OLDPID2: both have new processes, SLOT1's older.
restarted_in_order() {
    local p1 p2 t1 t2
    p1=$(main_pid "$1"); p2=$(main_pid "$3")
    t1=$(unit_prop "bluegreen@$1.service" ExecMainStartTimestampMonotonic)
    t2=$(unit_prop "bluegreen@$3.service" ExecMainStartTimestampMonotonic)
    [[ $p1 != "$2" && $p2 != "$4" && $t1 -lt $t2 ]] \
        || { echo "$1: pid $2 -> $p1 (started $t1), $3: pid $4 -> $p2 (started $t2)"; return 1; }
}
keeps() { [[ $(active_slot) == "$1" ]] && serves "$1" "$2" || { echo "active $(active_slot), serving $(served)"; return 1; }; }
flipped() { curl -s -m 2 "$URL/readyz" | jq -e --arg s "$1" --arg m "$2" '.slot == $s and .model != $m' >/dev/null; }
rows_are() { [[ $(data_rows) == "$1" ]] || { echo "data_rows: $(data_rows)"; return 1; }; }
model_changes() {
    local old i; old=$(served)
    bluegreen add-data --sample 2 >/dev/null || return 1
    for i in $(seq 300); do [[ $(served) != "$old" ]] && return 0; sleep 0.1; done
    echo "still serving $old"; return 1
}

# The dashboard (issue 12) under systemd: the active slot serves the page and its JSON from
# inside its sandbox, NGINX reaches each slot's counters, refuses other addresses and methods.
dashboard_checks() {
    local code active
    active=$(active_slot)
    code=$(curl -s -m 5 -o "$WORK/dashboard.html" -w '%{http_code} %{content_type}' "$URL/-/")
    if [[ $code == "200 text/html; charset=utf-8" ]] && grep -q 'uPlot.iife.min.js' "$WORK/dashboard.html"; then
        pass "GET :8080/-/ answers the page ($code)"
    else
        fail "GET :8080/-/ answers the page: $code $(head -c 200 "$WORK/dashboard.html")"
    fi
    check "...and the vendored uPlot it loads" \
        bash -c "curl -sf -m 5 '$URL/-/vendor/uplot/uPlot.iife.min.js' | grep -q 'leeoniya/uPlot'"
    check "GET /-/api/status: the active slot and its model, the data read from inside the slot's sandbox" \
        bash -c "curl -sf -m 5 '$URL/-/api/status' | jq -e --arg a '$active' --arg m '$(slot_model "$active")' \
            '.active == \$a and (.slots[] | select(.slot == \$a) | .model) == \$m and .data_rows > 0'"
    check "GET /-/api/history, /-/api/models and /-/api/predictions read the history, models and data" \
        bash -c "curl -sf -m 5 '$URL/-/api/history' | jq -e '.records | length > 0' \
            && curl -sf -m 5 '$URL/-/api/models' | jq -e '.models | length > 0 and all(.metrics.holdout_rmse > 0)' \
            && curl -sf -m 10 '$URL/-/api/predictions' | jq -e '.holdout_rows > 0 and (.actual | length) > 0'"
    local s
    for s in blue green; do
        check "GET /-/slots/$s/api/slot reaches $s itself" \
            bash -c "curl -sf -m 5 '$URL/-/slots/$s/api/slot' | jq -e --arg s $s '.slot == \$s and (.latency_buckets | length) > 0'"
    done
    code=$(curl -s -m 5 -o "$WORK/dashboard.post" -w '%{http_code}' -X POST -d '{}' "$URL/-/api/status")
    if [[ $code == 405 ]] && jq -e '.error and .hint' "$WORK/dashboard.post" >/dev/null; then
        pass "POST /-/api/status is refused: 405 $(jq -c .error "$WORK/dashboard.post")"
    else
        fail "POST /-/api/status is refused: $code $(head -c 200 "$WORK/dashboard.post")"
    fi
    # 127.0.0.2 is not this host's own address as NGINX allows it (127.0.0.1, ::1), nor listed.
    code=$(curl -s -m 5 --interface 127.0.0.2 -o "$WORK/dashboard.403" -w '%{http_code}' "$URL/-/api/status")
    if [[ $code == 403 ]] && jq -e '.error and .hint' "$WORK/dashboard.403" >/dev/null; then
        pass "from an address not in [dashboard] allow: 403 in JSON"
    else
        fail "from an address not in [dashboard] allow: $code $(head -c 200 "$WORK/dashboard.403")"
    fi
}

# Logs (issue 12): journald took each line's priority from its `<N>` prefix and left plain
# text without colours, and the slots' readiness lines are information, not warnings.
journal_reads_well() {
    local all info warnings ready='blue: (active|resting).*serving'
    all=$(journalctl -b -q -o cat -u 'bluegreen*')
    grep -qE "$ready" <<<"$all" || { echo "no readiness line for blue"; return 1; }
    ! grep -E '^<[0-7]>' <<<"$all" || { echo "a raw priority prefix is left"; return 1; }
    ! grep -F $'\x1b[' <<<"$all" || { echo "colours in the journal"; return 1; }
    info=$(journalctl -b -q -o cat -p info..info -u bluegreen@blue.service)
    grep -qE "$ready" <<<"$info" || { echo "the readiness line is not at priority info"; return 1; }
    warnings=$(journalctl -b -q -o cat -p warning -u bluegreen@blue.service)
    ! grep -E "$ready" <<<"$warnings" || { echo "the readiness line is a warning"; return 1; }
}

# =============================================================================================
before_reboot() {
    section "install"
    check "package installed" installed
    check "system is running (no failed units at all)" system_running
    local s
    for s in blue green; do
        check "bluegreen@$s.service is active" systemctl is-active "bluegreen@$s.service"
        local text model
        text=$(unit_prop "bluegreen@$s.service" StatusText)
        model=$(slot_model $s)
        if [[ -n $model && $text == *"$model"* ]]; then
            pass "bluegreen@$s.service STATUS= names its model: \"$text\""
        else
            fail "bluegreen@$s.service STATUS= names its model: \"$text\" (symlink: $model)"
        fi
    done
    check "the target and the path units are active" \
        systemctl is-active bluegreen.target bluegreen-data.path bluegreen-train.path bluegreen-deploy.path
    local overview
    overview=$(systemctl status --no-pager --lines=0 'bluegreen*' 2>&1)
    if grep -q 'bluegreen@blue.service' <<<"$overview" && grep -q 'bluegreen@green.service' <<<"$overview" \
        && [[ $(grep -cE 'Status: "(active|resting)[^"]*: serving' <<<"$overview") -ge 2 ]]; then
        pass "systemctl status 'bluegreen*' shows both slots with their models"
    else
        fail "systemctl status 'bluegreen*' shows both slots with their models"
    fi
    grep -E '^[●○×] |Active:|Status:' <<<"$overview" | sed 's/^/      | /'
    check "blue is the active slot after a first install" is_blue_active
    check "systemctl status shows blue active and green resting (STATUS=)" roles_shown blue

    local code price
    code=$(predict)
    price=$(jq -r '.Price' "$WORK/predict.body" 2>/dev/null)
    if [[ $code == 200 ]] && awk -v p="$price" 'BEGIN { exit !(p > 29 && p < 31) }'; then
        pass "POST :8080 answers the example row: Price $price, $(tr -d '\r' < "$WORK/predict.head" | grep -iE '^x-(slot|model-version):' | tr '\n' ' ')"
    else
        fail "POST :8080 answers the example row (HTTP $code): $(head -c 300 "$WORK/predict.body" 2>/dev/null)"
    fi
    check "GET :8080/readyz is ready on blue" readyz_on blue

    section "hardening (systemd-analyze security)"
    local unit score limit
    # The slot must be SAFE (issue 4); the trainer and its helper as low as the slot; the
    # deploy, root by necessity, is held to what it scores now.
    for unit in bluegreen@blue.service bluegreen-train.service bluegreen-data.service bluegreen-deploy.service bluegreen-check.service; do
        score=$(systemd-analyze security --no-pager "$unit" 2>/dev/null \
            | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
        case $unit in
            bluegreen-deploy.service|bluegreen-check.service) limit=2.0 ;;
            *) limit=1.0 ;;
        esac
        if [[ -n $score ]] && awk -v s="${score%% *}" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
            pass "$unit exposure $score (limit $limit)"
        else
            fail "$unit exposure ${score:-unknown} (limit $limit)"
        fi
    done

    section "man page and shell completions (issue 12)"
    # man without a terminal prints the page as plain text; LC_ALL=C keeps its hyphens ASCII.
    check "man bluegreen shows the page, naming the commands' pages" bash -c \
        'LC_ALL=C MANWIDTH=100 man bluegreen | grep -q "bluegreen-rollback(1)"'
    check "man bluegreen-train shows the command's page" bash -c \
        'LC_ALL=C MANWIDTH=100 man bluegreen-train | grep -q -- "--if-due"'
    check "bash-completion loads the completion on demand and completes a command" bash -c \
        'source /usr/share/bash-completion/bash_completion && __load_completion bluegreen \
         && COMP_WORDS=(bluegreen rol) COMP_CWORD=1 && _bluegreen bluegreen rol bluegreen \
         && [[ "${COMPREPLY[*]}" == rollback ]]'
    check "the zsh and fish completions are where those shells look" test -s /usr/share/zsh/vendor-completions/_bluegreen \
        -a -s /usr/share/fish/vendor_completions.d/bluegreen.fish

    check "the journal holds the slots' lines as plain text, each at its priority (issue 12)" journal_reads_well

    section "maintainer scripts are safe to run twice"
    local before_active before_model version
    before_active=$(active_slot); before_model=$(slot_model "$before_active")
    version=$(dpkg-query -W -f='${Version}' bluegreen)
    local workers; workers=$(nginx_workers)
    check "postinst configure, run again" /var/lib/dpkg/info/bluegreen.postinst configure "$version"
    check "postinst configure, and once more" /var/lib/dpkg/info/bluegreen.postinst configure "$version"
    check "...keeps the active slot and its model ($before_active, $before_model)" keeps "$before_active" "$before_model"
    check "...leaves no unit failed" no_failed_units
    check "...and does not reload NGINX (same workers: $workers)" same_workers "$workers"

    section "upgrade to a newer version under load: the slots restart one at a time"
    local resting pid_active pid_resting upgrade workers0
    [[ $before_active == blue ]] && resting=green || resting=blue
    upgrade=$(upgrade_deb) || fail "could not repack $DEB with a higher version"
    pid_active=$(main_pid "$before_active"); pid_resting=$(main_pid "$resting")
    workers0=$(nginx_workers)
    load_start upgrade
    local t0; t0=$(now_ms)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 "$upgrade" > "$WORK/upgrade.log" 2>&1 \
        || { sed 's/^/      | /' "$WORK/upgrade.log"; dpkg --configure -a >> "$WORK/upgrade.log" 2>&1; }
    local took=$(( $(now_ms) - t0 ))
    load_verdict "apt install of $(dpkg-query -W -f='${Version}' bluegreen) over $version took $took ms"
    check "...the new version is installed" bash -c "[[ \$(dpkg-query -W -f='\${Version}' bluegreen) == $version+e2e1 ]]"
    check "...keeps the active slot and its model" keeps "$before_active" "$before_model"
    check "...restarts both slots, the resting one ($resting) first" \
        restarted_in_order "$resting" "$pid_resting" "$before_active" "$pid_active"
    check "...does not reload NGINX, whose site did not change (same workers: $workers0)" same_workers "$workers0"
    check "...leaves no unit failed" no_failed_units

    section "systemctl restart bluegreen.target under load"
    load_start restart
    check "systemctl restart bluegreen.target" systemctl restart bluegreen.target
    load_verdict "...restarts both slots"
    check "...and keeps the active slot and its model" keeps "$before_active" "$before_model"

    section "configuration: bluegreen check, a bad config, a config change"
    config_changes

    section "add-data flips traffic"
    local from to old new t
    from=$(active_slot); old=$(slot_model "$from")
    [[ $from == blue ]] && to=green || to=blue
    t0=$(now_ms)
    check "bluegreen add-data --sample 2" bluegreen add-data --sample 2
    if wait_for 30 flipped "$to" "$old"; then
        t=$(( $(now_ms) - t0 ))
        pass "traffic moved from $from to $to with a new model in $t ms: $(served)"
    else
        fail "traffic moved from $from to $to within 30 s (serving: $(served))"
    fi
    wait_settled
    check "the new model is current (no training due)" model_is_current
    check "...and is the active one" newest_is_active
    check "...and systemctl status follows: $to active, $from resting (STATUS=)" roles_shown "$to"

    section "rows added while a training runs"
    rows_during_training

    section "burst: 20 add-data calls in 2 s"
    local rows0 v0 i
    rows0=$(data_rows); v0=$(version_number "$(newest_model)")
    t0=$(now_ms)
    for i in $(seq 20); do
        bluegreen add-data --sample 1 >/dev/null 2>&1 || fail "add-data #$i failed"
        sleep 0.1
    done
    info "20 calls took $(( $(now_ms) - t0 )) ms"
    wait_settled 120
    info "settled $(( $(now_ms) - t0 )) ms after the first call; $(( $(version_number "$(newest_model)") - v0 )) models trained"
    check "...no bluegreen unit failed" no_failed_units
    check "...the path units still watch" systemctl is-active bluegreen-data.path bluegreen-train.path bluegreen-deploy.path
    check "...all $(( rows0 + 20 )) rows are in the data" rows_are $(( rows0 + 20 ))
    check "...the newest model is current (no training due)" model_is_current
    check "...and is the active one" newest_is_active
    check "...a later add-data still deploys" model_changes
    wait_settled

    section "the dashboard at :8080/-/"
    dashboard_checks

    section "kill -9 of the active slot under load"
    kill_active_slot

    # It stays in socket mode from here on: through the reboot, remove, install and purge.
    section "switch mode \"socket\": the change applied, flips under load without a reload"
    socket_mode

    section "rollout.promote = \"manual\": a candidate waits, is previewed, promoted; another is aborted"
    manual_promote

    section "a rollout that outlasts the deploy unit's start timeout (EXTEND_TIMEOUT_USEC)"
    long_rollout

    section "systemd facts the units are built around (throwaway units)"
    systemd_facts

    # Last: the poisoned rows stay in the data.
    section "a model the quality gate refuses: bluegreen-train.service fails, visibly"
    refused_model

    # For after-reboot.
    wait_settled
    active_slot > "$WORK/active"; slot_model "$(active_slot)" > "$WORK/model"
    info "before reboot: $(cat "$WORK/active") serves $(cat "$WORK/model")"
}

# Switch mode "socket" (issue 10): the documented change (config, daemon-reload, bluegreen
# restart) under load, who may connect and write, then flips and a rollback under 16
# keep-alive and 8 `Connection: close` clients, none of which may fail, without NGINX reloading.
SOCKETS=/var/lib/bluegreen/sockets
socket_mode() {
    local active model out rc workers i from to old
    active=$(active_slot); model=$(slot_model "$active")
    sed -i 's/^#switch = "reload"$/switch = "socket"/' "$CONFIG"
    grep -q '^switch = "socket"$' "$CONFIG" || fail "could not set switch = \"socket\" in $CONFIG"
    out=$(bluegreen check 2>&1)
    if [[ $? != 0 ]] && grep -q 'key `nginx.switch` and bluegreen@blue.socket' <<<"$out" && grep -q 'daemon-reload' <<<"$out"; then
        pass "with switch = \"socket\" in the config, bluegreen check says the socket units lag until systemctl daemon-reload"
    else
        fail "with switch = \"socket\" in the config, bluegreen check names nginx.switch and the socket units"
        sed 's/^/      | /' <<<"$out"
    fi
    check "systemctl daemon-reload: the generator moves the slots' sockets" systemctl daemon-reload
    check "...bluegreen@blue.socket listens on $SOCKETS/blue.sock" bash -c \
        "[[ \$(systemctl show -P Listen bluegreen@blue.socket) == '$SOCKETS/blue.sock (Stream)' ]] || { systemctl show -P Listen bluegreen@blue.socket; false; }"
    out=$(bluegreen check 2>&1)
    if [[ $? == 0 ]] && grep -q 'routes the reload way' <<<"$out"; then
        pass "...and bluegreen check passes, warning that the include is not switched yet"
    else
        fail "...and bluegreen check passes, warning that the include is not switched yet"; sed 's/^/      | /' <<<"$out"
    fi
    # The mode change has a short window in which NGINX has nowhere to send requests (between
    # the active slot's old socket closing and NGINX's reload; src/cmd/restart.rs): its
    # failures are counted, not held to 0.
    load_start switch-socket
    out=$(bluegreen restart 2>&1); rc=$?
    load_stop
    if (( rc == 0 )); then
        pass "bluegreen restart applies it (both slots restart with their sockets, NGINX reloads once): $LOAD_FAILED failed requests ($LOAD_FIGURES)"
    else
        fail "bluegreen restart applies it (exit $rc)"; sed 's/^/      | /' <<<"$out" | tail -n 8
    fi
    check "...keeps the active slot and its model ($active, $model)" keeps "$active" "$model"
    check "...bluegreen status says switch socket, with no note" bash -c \
        '[[ $(bluegreen status --json | jq -r ".switch + \" \" + (.notes | length | tostring)") == "socket 0" ]] || { bluegreen status; false; }'
    check "the sockets' folder is root's alone to write; its sockets are for root and www-data (NGINX)" \
        bash -c "[[ \$(stat -c '%a %U %G' $SOCKETS) == '755 root root' && \$(stat -c '%a %U %G %F' $SOCKETS/blue.sock) == '660 root www-data socket' && \$(readlink $SOCKETS/active.sock) == $active.sock ]] || { ls -la $SOCKETS; false; }"
    check "...www-data (NGINX's workers) connects through the link" \
        setpriv --reuid=www-data --regid=www-data --clear-groups curl -sf -m 5 --unix-socket "$SOCKETS/active.sock" http://slot/readyz
    check "...bluegreen (the slots' user) may not connect" bash -c \
        "! setpriv --reuid=bluegreen --regid=bluegreen --clear-groups curl -s -m 5 --unix-socket $SOCKETS/active.sock http://slot/readyz"
    check "...nor move the link" bash -c \
        "! setpriv --reuid=bluegreen --regid=bluegreen --clear-groups ln -sfn green.sock $SOCKETS/active.sock && [[ \$(readlink $SOCKETS/active.sock) == $active.sock ]]"

    workers=$(nginx_workers)
    load_start socket-flips
    for i in 1 2 3; do
        from=$(active_slot); old=$(slot_model "$from")
        [[ $from == blue ]] && to=green || to=blue
        bluegreen add-data --sample 2 >/dev/null
        wait_for 30 flipped "$to" "$old" || fail "flip $i: traffic moved to $to within 30 s (serving: $(served))"
        wait_settled
    done
    out=$(bluegreen rollback 2>&1) || { fail "bluegreen rollback"; sed 's/^/      | /' <<<"$out"; }
    from=$(active_slot); old=$(slot_model "$from")
    [[ $from == blue ]] && to=green || to=blue
    bluegreen add-data --sample 2 >/dev/null
    wait_for 30 flipped "$to" "$old" || fail "the flip after the rollback: traffic moved to $to within 30 s"
    wait_settled
    load_verdict "3 flips by add-data, a rollback and one more flip in socket mode"
    check "...NGINX was never reloaded: the same workers served throughout" same_workers "$workers"
    check "...the newest model is active" newest_is_active
    check "...and systemctl status follows: $(active_slot) active, the other resting (STATUS=)" roles_shown "$(active_slot)"
    check "...no unit failed" no_failed_units
}

# Issue 11 under systemd, in socket mode (set by the section before): with promote =
# "manual", the deploy that bluegreen-deploy.service runs after add-data stops with the new
# model ready on the resting slot. It waits through `systemctl restart bluegreen.target`, is
# reachable with `X-Bluegreen-Preview: 1` from this host only, and `bluegreen promote` moves
# the traffic; the next candidate is dropped with `bluegreen abort`, its slot back on the
# model it had. All under 16 keep-alive and 8 `Connection: close` clients, none may fail.
# Then, without load, another address may preview once nginx.preview_from lists it.
waiting_version() { status_json | jq -r '.waiting.version // empty'; }
someone_waits() { [[ -n $(waiting_version) ]]; }
# The slot a preview reaches, sent from 127.0.0.1 or from the address $1.
preview_slot() {
    curl -s -m 5 --interface "${1:-127.0.0.1}" -o /dev/null -w '%header{x-slot}' \
        -H 'X-Bluegreen-Preview: 1' -H 'Content-Type: application/json' \
        -d "{\"data\": [$ROW]}" "$URL/"
}
# A preview (from 127.0.0.1, or from $2) reaches slot $1.
preview_reaches() {
    local got; got=$(preview_slot "${2:-}")
    [[ $got == "$1" ]] || { echo "the preview reached \"$got\", not $1"; return 1; }
}
# $1 waits for promote, and a preview reaches $2.
still_waits() {
    [[ $(waiting_version) == "$1" ]] || { echo "waiting: \"$(waiting_version)\""; return 1; }
    preview_reaches "$2"
}
manual_promote() {
    local active resting model v2 v3 code out
    sed -i 's/^#promote = "auto"$/promote = "manual"/' "$CONFIG"
    grep -q '^promote = "manual"$' "$CONFIG" || fail "could not set promote = \"manual\" in $CONFIG"
    check "bluegreen check accepts promote = \"manual\"" bluegreen check
    active=$(active_slot); model=$(slot_model "$active")
    [[ $active == blue ]] && resting=green || resting=blue
    load_start manual-promote
    bluegreen add-data --sample 2 >/dev/null
    if wait_for 60 someone_waits; then
        v2=$(waiting_version)
        pass "after add-data, $v2 waits on $resting: $(status_json | jq -c .waiting)"
    else
        fail "after add-data, a candidate waits (status: $(status_json | jq -c '{waiting, last: .last_deploys[-1]}'))"
    fi
    wait_settled
    check "...traffic stays on $active with $model" keeps "$active" "$model"
    check "...bluegreen status shows the waiting line" bash -c "bluegreen status | grep -q '^  waiting  $v2 on $resting'"
    check "...a preview from this host (127.0.0.1) reaches $resting" preview_reaches "$resting"
    # 127.0.0.2 is on loopback but is not this host's own address as NGINX sees it: the site
    # lets only 127.0.0.1 and ::1 preview unless nginx.preview_from lists another.
    code=$(curl -s -m 5 --interface 127.0.0.2 -o "$WORK/preview.body" -w '%{http_code}' \
        -H 'X-Bluegreen-Preview: 1' -d "{\"data\": [$ROW]}" "$URL/")
    if [[ $code == 403 ]] && jq -e '.error and .hint' "$WORK/preview.body" >/dev/null; then
        pass "...a preview from 127.0.0.2 (not this host's address, not in nginx.preview_from) is refused: 403 $(jq -c .error "$WORK/preview.body")"
    else
        fail "...a preview from 127.0.0.2 is refused (got $code: $(head -c 200 "$WORK/preview.body"))"
    fi
    check "systemctl restart bluegreen.target while it waits" systemctl restart bluegreen.target
    check "...$v2 still waits, and the preview still reaches it" still_waits "$v2" "$resting"
    out=$(bluegreen promote 2>&1) || { fail "bluegreen promote"; sed 's/^/      | /' <<<"$out" | tail -n 5; }
    check "bluegreen promote: $resting serves $v2 with all the traffic" keeps "$resting" "$v2"
    bluegreen add-data --sample 2 >/dev/null
    wait_for 60 bash -c "[[ -n \$(bluegreen status --json | jq -r '.waiting.version // empty') && \$(bluegreen status --json | jq -r .waiting.version) != $v2 ]]" \
        || fail "after more data, another candidate waits"
    v3=$(waiting_version)
    wait_settled
    out=$(bluegreen abort 2>&1) || { fail "bluegreen abort"; sed 's/^/      | /' <<<"$out" | tail -n 5; }
    check "bluegreen abort: $active is back on $model, traffic stays on $resting ($v2)" bash -c \
        "[[ \$(bluegreen status --json | jq -r '.slots[] | select(.slot == \"$active\") | .model') == $model ]] && ! bluegreen status --json | jq -e .waiting >/dev/null" 
    check "...and $v3 is not deployed again by the trigger" keeps "$resting" "$v2"
    load_verdict "a wait, a preview, a restart of the target, a promote and an abort in socket mode"
    check "the history holds the decisions: deploy waiting, promote deployed, deploy waiting, abort aborted" bash -c \
        "[[ \$(bluegreen status --json | jq -r '[.last_deploys[] | .action + \" \" + .outcome] | .[-4:] | join(\",\")') == 'deploy waiting,promote deployed,deploy waiting,abort aborted' ]] || bluegreen status"
    check "...no unit failed" no_failed_units

    # Outside the load: applying it reloads NGINX, which closes idle keep-alive client
    # connections as every reload does (README: Switch modes).
    sed -i 's/^#preview_from = \[\]$/preview_from = ["127.0.0.2"]/' "$CONFIG"
    grep -q '^preview_from = \["127.0.0.2"\]$' "$CONFIG" || fail "could not set preview_from in $CONFIG"
    out=$(bluegreen restart 2>&1)
    if [[ $? == 0 ]] && grep -q "NGINX reloaded with what the config renders now: the previews' include" <<<"$out"; then
        pass "with 127.0.0.2 in nginx.preview_from, bluegreen restart rewrites the previews' include and reloads NGINX"
    else
        fail "with 127.0.0.2 in nginx.preview_from, bluegreen restart applies it"; sed 's/^/      | /' <<<"$out" | tail -n 8
    fi
    check "...a preview from 127.0.0.2 now reaches the resting slot, $active" preview_reaches "$active" 127.0.0.2
    check "...and one from 127.0.0.3 is still refused" bash -c \
        "[[ \$(curl -s -m 5 --interface 127.0.0.3 -o /dev/null -w '%{http_code}' -H 'X-Bluegreen-Preview: 1' -d '{}' $URL/) == 403 ]]"
    sed -i 's/^promote = "manual"$/#promote = "auto"/' "$CONFIG"
}

# Issue 11: a rollout may last longer than bluegreen-deploy.service's TimeoutStartSec=, and
# the deploy's EXTEND_TIMEOUT_USEC= messages (NotifyAccess=main) keep systemd from killing it.
# For this section a runtime drop-in lowers the timeout to 15 s, and the watch lasts 25 s,
# under load (a phase needs requests to judge); the unit must end in success, the deploy
# recorded with its watch, while `systemctl status` showed the watch's figures.
long_rollout() {
    local dropin=/run/systemd/system/bluegreen-deploy.service.d
    mkdir -p "$dropin"
    printf '[Service]\nTimeoutStartSec=15s\n' > "$dropin/50-e2e-timeout.conf"
    systemctl daemon-reload
    check "bluegreen-deploy.service takes sd_notify from the deploy (NotifyAccess=main), start timeout 15 s" bash -c \
        "[[ \$(systemctl show -P NotifyAccess bluegreen-deploy.service) == main && \$(systemctl show -P TimeoutStartUSec bluegreen-deploy.service) == 15s ]]"
    sed -i 's/^#watch_seconds = 0$/watch_seconds = 25/' "$CONFIG"
    grep -q '^watch_seconds = 25$' "$CONFIG" || fail "could not set watch_seconds = 25 in $CONFIG"
    load_start long-rollout
    bluegreen add-data --sample 2 >/dev/null
    check "...the deploy reaches its watch, and systemctl status shows its figures (STATUS=)" wait_for 60 bash -c \
        "[[ \$(systemctl show -P StatusText bluegreen-deploy.service) == 'rollout: watch '*' requests'* ]]"
    info "$(systemctl show -P StatusText bluegreen-deploy.service)"
    wait_settled 120
    load_verdict "a 25 s watch under a 15 s start timeout"
    check "...bluegreen-deploy.service ended in success, not killed at 15 s" bash -c \
        "[[ \$(systemctl show -P Result bluegreen-deploy.service) == success ]] || journalctl -u bluegreen-deploy.service --no-pager | tail -n 5"
    check "...the deploy is recorded as deployed, its watch passed" bash -c \
        "bluegreen status --json | jq -e '.last_deploys[-1] | .action == \"deploy\" and .outcome == \"deployed\" and .rollout[-1].phase == \"watch\" and .rollout[-1].passed' >/dev/null || bluegreen status"
    rm -f "$dropin/50-e2e-timeout.conf"
    systemctl daemon-reload
    sed -i 's/^watch_seconds = 25$/#watch_seconds = 0/' "$CONFIG"
}

# Makes a training take 3 s longer after it has read the data and written its model, by
# putting a slow wrapper in front of the binary for bluegreen-train.service only (a test-only
# drop-in). Rows added in that window arrive while the trainer runs, the case in which
# systemd loses a PathChanged= event (issue #5770); they must still be trained and deployed.
rows_during_training() {
    mkdir -p /run/bluegreen-e2e /run/systemd/system/bluegreen-train.service.d
    cp /usr/bin/bluegreen /run/bluegreen-e2e/bluegreen.real
    cat > /run/bluegreen-e2e/bluegreen <<'EOF'
#!/bin/sh
/run/bluegreen-e2e/bluegreen.real "$@"
status=$?
[ "$status" = 10 ] && sleep 3
exit $status
EOF
    chmod 755 /run/bluegreen-e2e/bluegreen
    cat > /run/systemd/system/bluegreen-train.service.d/e2e-slow.conf <<'EOF'
[Service]
BindReadOnlyPaths=/run/bluegreen-e2e/bluegreen:/usr/bin/bluegreen
EOF
    systemctl daemon-reload

    local inv1 inv2 rows0 t0
    newest0=$(newest_model)
    rows0=$(data_rows)
    bluegreen add-data --sample 2 >/dev/null
    # The first training has written its model and the unit is still running: the window.
    if wait_for 20 in_training_window; then
        inv1=$(unit_prop bluegreen-train.service InvocationID)
        t0=$(now_ms)
        bluegreen add-data --sample 2 >/dev/null
        info "added 2 rows while bluegreen-train.service ran ($(systemctl is-active bluegreen-train.service)), after it trained $(newest_model)"
        wait_settled 60
        inv2=$(unit_prop bluegreen-train.service InvocationID)
        check "...all $(( rows0 + 4 )) rows are trained on, without another add-data" model_is_current
        check "...and that model is deployed and active" newest_is_active
        if [[ $inv1 != "$inv2" ]]; then
            pass "...by the next trainer run, started as the first ended; settled $(( $(now_ms) - t0 )) ms after the late rows"
        else
            fail "...by the next trainer run (none ran after $inv1)"
        fi
    else
        fail "the trainer ran and wrote a model within 20 s of add-data"
    fi
    rm -rf /run/systemd/system/bluegreen-train.service.d /run/bluegreen-e2e
    systemctl daemon-reload
}

in_training_window() {
    [[ $(systemctl is-active bluegreen-train.service) == activating && $(newest_model) != "$newest0" ]]
}

kill_active_slot() {
    local slot pid model restarts0 pid2
    slot=$(active_slot); model=$(slot_model "$slot")
    pid=$(main_pid "$slot"); restarts0=$(unit_prop "bluegreen@$slot.service" NRestarts)
    load_start kill
    kill -9 "$pid"
    load_verdict "kill -9 of the active slot ($slot)"
    pid2=$(main_pid "$slot")
    check "...systemd restarted bluegreen@$slot.service (pid $pid -> $pid2, NRestarts $restarts0 -> $(unit_prop "bluegreen@$slot.service" NRestarts))" \
        bash -c "[[ $pid2 != 0 && $pid2 != $pid ]] && systemctl is-active bluegreen@$slot.service"
    check "...and it serves the same model ($model) as the active slot" keeps "$slot" "$model"
    check "...no unit failed" no_failed_units
}

# A copy of $DEB with a higher version ("<version>+e2e1"), for a real upgrade (dpkg runs the
# maintainer scripts as an upgrade from the installed version). Prints its path.
upgrade_deb() {
    local dir=$WORK/repack v
    rm -rf "$dir"
    dpkg-deb -R "$DEB" "$dir" || return 1
    v=$(sed -n 's/^Version: //p' "$dir/DEBIAN/control")
    sed -i "s/^Version: .*/Version: $v+e2e1/" "$dir/DEBIAN/control"
    dpkg-deb -Zgzip -b "$dir" "$WORK/bluegreen_$v+e2e1.deb" >/dev/null || return 1
    rm -rf "$dir"
    echo "$WORK/bluegreen_$v+e2e1.deb"
}

CONFIG=/etc/bluegreen/config.toml
LAST_GOOD=$STATE/config.last-good.toml
pids() { echo "$(main_pid blue) $(main_pid green)"; }
# An unchanged pair of slot processes: "$1" is what pids printed before.
untouched() { [[ $(pids) == "$1" ]] || { echo "pids: $1 -> $(pids)"; return 1; }; }
config_bad_everywhere() {
    local s text
    for s in blue green; do
        text=$(unit_prop "bluegreen@$s.service" StatusText)
        [[ $text == *"CONFIG IS BAD"*batch_size*"running on the last good one"* ]] \
            || { echo "bluegreen@$s: $text"; return 1; }
        # Whole outputs, not `| grep -q`: under pipefail an early exit of grep fails the writer.
        text=$(journalctl -b -q -u "bluegreen@$s.service" --since "-2min")
        [[ $text == *"$s: CONFIG IS BAD"* ]] || { echo "no CONFIG IS BAD line in the journal of bluegreen@$s"; return 1; }
        # A warning for journald (the slot's `<4>` prefix, issue 12), which it strips.
        text=$(journalctl -b -q -p warning -u "bluegreen@$s.service" --since "-2min")
        [[ $text == *"$s: CONFIG IS BAD"* ]] || { echo "the CONFIG IS BAD line of bluegreen@$s is not at priority warning"; return 1; }
    done
    text=$(bluegreen status)
    [[ ${text%%$'\n'*} =~ ^'!! CONFIG IS BAD ('.*batch_size ]] || { echo "$text" | head -n3; return 1; }
}
target_says_dependency_failed() {
    local out; out=$(systemctl status --no-pager bluegreen.target 2>&1)
    [[ $(systemctl is-active bluegreen.target) != active ]] && grep -q 'Dependency failed' <<<"$out" \
        || { echo "$out"; return 1; }
}
check_unit_names_the_key() {
    local out; out=$(systemctl status --no-pager --lines=20 bluegreen-check.service 2>&1)
    [[ $(systemctl is-failed bluegreen-check.service) == failed ]] && grep -q 'key `batch_size`' <<<"$out" \
        && grep -q 'hint:' <<<"$out" || { echo "$out"; return 1; }
}
no_restarts_for() {
    local before; before=$(pids); local n0; n0=$(unit_prop bluegreen@blue.service NRestarts)+$(unit_prop bluegreen@green.service NRestarts)
    sleep "$1"
    local n1; n1=$(unit_prop bluegreen@blue.service NRestarts)+$(unit_prop bluegreen@green.service NRestarts)
    [[ $(pids) == "$before" && $n0 == "$n1" ]] || { echo "pids $before -> $(pids), NRestarts $n0 -> $n1"; return 1; }
}
# A body of `n` copies of the example row.
rows_body() { printf '{"data": ['; for ((i = 1; i < $1; i++)); do printf '%s,' "$ROW"; done; printf '%s]}' "$ROW"; }
answers_rows() {
    local got; rows_body "$1" > "$WORK/rows.json"
    got=$(curl -s -m 10 -o "$WORK/rows.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/rows.json" "$URL/")
    [[ $got == "$2" ]] || { echo "$1 rows: HTTP $got: $(head -c 200 "$WORK/rows.out")"; return 1; }
}

# Issue 8 §3: `bluegreen check`; a bad config refused by `bluegreen restart` and survived by
# `systemctl restart bluegreen.target` (slots on the last good config, saying so everywhere,
# no restart loop); a slot that cannot start at all stops restarting; a good change applied
# by `bluegreen restart` under load.
config_changes() {
    local good t0 before out
    cp "$CONFIG" "$WORK/config.good"
    t0=$(now_ms)
    out=$(bluegreen check 2>&1)
    if [[ $? == 0 && -s $LAST_GOOD ]]; then
        pass "bluegreen check passes in $(( $(now_ms) - t0 )) ms and saves $LAST_GOOD"
    else
        fail "bluegreen check passes and saves $LAST_GOOD"; sed 's/^/      | /' <<<"$out"
    fi

    # A slot moved in the config but not in its socket unit: the slot would refuse the socket.
    sed -i 's/^#blue = "127.0.0.1:8081"$/blue = "127.0.0.1:9081"/' "$CONFIG"
    out=$(bluegreen check 2>&1)
    if [[ $? != 0 ]] && grep -q 'key `slots.blue` and bluegreen@blue.socket' <<<"$out"; then
        pass "with slots.blue moved only in the config, bluegreen check names the key and the socket unit"
    else
        fail "with slots.blue moved only in the config, bluegreen check names the key and the socket unit"
        sed 's/^/      | /' <<<"$out"
    fi
    cp "$WORK/config.good" "$CONFIG"

    sed -i '1i batch_size = 0' "$CONFIG"
    out=$(bluegreen check 2>&1)
    if [[ $? != 0 ]] && grep -q 'key `batch_size`' <<<"$out" && grep -q 'hint:' <<<"$out"; then
        pass "with batch_size = 0, bluegreen check fails naming the key with a hint: $(grep -m1 'key `batch_size`' <<<"$out")"
    else
        fail "with batch_size = 0, bluegreen check fails naming the key"; sed 's/^/      | /' <<<"$out"
    fi

    before=$(pids)
    load_start restart-refused
    out=$(bluegreen restart 2>&1)
    local rc=$?
    load_verdict "bluegreen restart with the bad config"
    if (( rc != 0 )) && grep -q 'batch_size' <<<"$out"; then
        pass "...is refused (exit $rc), naming batch_size"
    else
        fail "...is refused (exit $rc)"; sed 's/^/      | /' <<<"$out" | tail -n 5
    fi
    check "...and touches no slot" untouched "$before"

    load_start restart-bad
    t0=$(now_ms)
    out=$(systemctl restart bluegreen.target 2>&1)
    rc=$?
    load_verdict "systemctl restart bluegreen.target with the bad config"
    if (( rc != 0 )); then
        pass "...fails loudly (exit $rc: $out)"
    else
        fail "...fails loudly (it exited 0)"
    fi
    check "...both slots serve on the last good config and say so: STATUS=, journal, bluegreen status" config_bad_everywhere
    check "...systemctl status bluegreen.target: inactive, \"Dependency failed\"" target_says_dependency_failed
    check "...systemctl status bluegreen-check.service: failed, naming batch_size with a hint" check_unit_names_the_key
    check "...no slot restarts over the next 3 s (pids and NRestarts unchanged)" no_restarts_for 3
    systemctl status --no-pager --lines=0 bluegreen@blue.service | grep Status: | sed 's/^/      | /'

    hopeless_slot

    # A good change (fewer rows per request), applied the documented way.
    cp "$WORK/config.good" "$CONFIG"
    sed -i 's/^#max_rows = 10000$/max_rows = 5000/' "$CONFIG"
    grep -q '^max_rows = 5000$' "$CONFIG" || fail "could not set max_rows = 5000 in $CONFIG"
    local active resting pid_a pid_r
    active=$(active_slot); [[ $active == blue ]] && resting=green || resting=blue
    pid_a=$(main_pid "$active"); pid_r=$(main_pid "$resting")
    load_start restart-good
    out=$(bluegreen restart 2>&1)
    rc=$?
    load_verdict "bluegreen restart with a good change (limits.max_rows = 5000)"
    (( rc == 0 )) || { fail "...exits 0 (exit $rc)"; sed 's/^/      | /' <<<"$out" | tail -n 5; }
    check "...restarts the resting slot ($resting) first" restarted_in_order "$resting" "$pid_r" "$active" "$pid_a"
    check "...the change is in effect: 5001 rows get a 413" answers_rows 5001 413
    check "...and the slots no longer say CONFIG IS BAD" bash -c \
        '! systemctl show -P StatusText bluegreen@blue.service bluegreen@green.service | grep -q "CONFIG IS BAD"'
    check "...and brings bluegreen.target back: active, bluegreen-check.service passed" bash -c \
        '[[ $(systemctl is-active bluegreen.target) == active && $(systemctl show -P Result bluegreen-check.service) == success ]] || systemctl status --no-pager bluegreen.target bluegreen-check.service'
    check "...no unit failed" no_failed_units
}

# A slot that cannot start at all (bad config, no last good one) stops restarting: it is
# left failed by its start limit within seconds (issue 8 §3: no unit restarts several times
# a second forever). Shown on the resting slot, which has no traffic.
hopeless_slot() {
    local active resting t0 ms n
    active=$(active_slot)
    [[ $active == blue ]] && resting=green || resting=blue
    mv "$LAST_GOOD" "$WORK/last-good.toml"
    t0=$(now_ms)
    systemctl restart "bluegreen@$resting.service" >/dev/null 2>&1
    wait_for 30 bash -c "[[ \$(systemctl is-failed bluegreen@$resting.service) == failed && \$(systemctl show -P SubState bluegreen@$resting.service) == failed ]]"
    ms=$(( $(now_ms) - t0 ))
    n=$(unit_prop "bluegreen@$resting.service" NRestarts)
    sleep 2
    if [[ $(systemctl is-failed "bluegreen@$resting.service") == failed && $(unit_prop "bluegreen@$resting.service" NRestarts) == "$n" ]] && (( ms < 15000 )); then
        pass "a slot that cannot start (bad config, no last good one) is left failed after $(( n + 1 )) starts in $ms ms, and stays so; its log says why: $(journalctl -b -q -u "bluegreen@$resting.service" -n 50 | grep -m1 -o 'cannot stand in for it')"
    else
        fail "a slot that cannot start stops restarting (after $ms ms: $(systemctl is-failed "bluegreen@$resting.service"), NRestarts $n -> $(unit_prop "bluegreen@$resting.service" NRestarts))"
    fi
    # The active slot: NGINX's connections start it again through its socket too, yet it
    # stops within seconds, and then clients get NGINX's error (502 or 503) at once instead
    # of waiting a minute on a backlog nobody accepts.
    local code took
    ( while :; do curl -s -m 70 -o /dev/null -H 'Content-Type: application/json' -d "{\"data\": [$ROW]}" "$URL/"; sleep 0.05; done ) &
    local poker=$!
    t0=$(now_ms)
    systemctl restart "bluegreen@$active.service" >/dev/null 2>&1
    wait_for 30 bash -c "[[ \$(systemctl is-failed bluegreen@$active.socket) == failed ]]"
    ms=$(( $(now_ms) - t0 ))
    n=$(unit_prop "bluegreen@$active.service" NRestarts)
    kill "$poker"; wait "$poker" 2>/dev/null
    read -r code took < <(curl -s -m 70 -o /dev/null -w '%{http_code} %{time_total}' -H 'Content-Type: application/json' -d "{\"data\": [$ROW]}" "$URL/")
    sleep 2
    if [[ $(systemctl is-failed "bluegreen@$active.service") == failed && $(unit_prop "bluegreen@$active.service" NRestarts) == "$n" && $code =~ ^50[23]$ ]] \
        && awk -v t="$took" 'BEGIN { exit !(t < 1) }'; then
        pass "...the active one too, with clients knocking: failed with its socket after $(( n + 1 )) starts in $ms ms; then NGINX answers $code in ${took} s"
    else
        fail "...the active one too: after $ms ms $(systemctl is-failed "bluegreen@$active.service"), socket $(systemctl is-failed "bluegreen@$active.socket"), NRestarts $n -> $(unit_prop "bluegreen@$active.service" NRestarts); NGINX answered $code in ${took} s"
    fi

    mv "$WORK/last-good.toml" "$LAST_GOOD"
    systemctl reset-failed "bluegreen@$resting.service" "bluegreen@$resting.socket" \
        "bluegreen@$active.service" "bluegreen@$active.socket"
    check "...both start again once there is a last good config to fall back to" \
        systemctl start "bluegreen@$resting.service" "bluegreen@$active.service"
    check "...and the active one serves" readyz_on "$active"
}

# Issue 8 §7: a model the gate refuses fails bluegreen-train.service (exit 3), so that
# `systemctl status` shows the REFUSED line; no deploy is asked for.
refused_model() {
    local active model inv
    active=$(active_slot); model=$(slot_model "$active")
    inv=$(unit_prop bluegreen-train.service InvocationID)
    bluegreen add-data --row "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9" \
        --row "0.2,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9" >/dev/null
    wait_for 30 bash -c "[[ \$(systemctl show -P InvocationID bluegreen-train.service) != $inv && \$(systemctl is-active bluegreen-train.service) != activating ]]"
    wait_settled
    local out; out=$(systemctl status --no-pager --lines=20 bluegreen-train.service 2>&1)
    if [[ $(systemctl is-failed bluegreen-train.service) == failed && $(unit_prop bluegreen-train.service ExecMainStatus) == 3 ]] \
        && grep -q 'REFUSED' <<<"$out"; then
        pass "two rows with MEDV = 1e9: bluegreen-train.service failed with status 3, and its status shows: $(grep -m1 -o 'quality gate: REFUSED[^;]*' <<<"$out")"
    else
        fail "a refused model fails bluegreen-train.service with status 3 and REFUSED in its status"
        sed 's/^/      | /' <<<"$out"
    fi
    check "...no deploy was asked for: $active still serves $model" keeps "$active" "$model"
    check "...and the refusal is in the history and in bluegreen status" refusal_recorded
    check "...and the trainer still watches" systemctl is-active bluegreen-train.path bluegreen-data.path
    systemctl reset-failed bluegreen-train.service
}

# The last refusal is in the history (as the trainer wrote it) and `status` names it.
refusal_recorded() {
    local j; j=$(status_json)
    jq -e '.newest_refused.reason != null and ([.last_deploys[] | select(.outcome == "refused")] | length > 0)' <<<"$j" >/dev/null \
        || { jq '{newest_refused, last: [.last_deploys[] | {action, outcome, reason}]}' <<<"$j"; return 1; }
}

# The two systemd behaviours that shaped the units, shown with throwaway units on this very
# systemd, so that a change of systemd that makes them moot is noticed.
systemd_facts() {
    local d=/run/bluegreen-facts u=/run/systemd/system
    mkdir -p "$d"; : > "$d/lost"; : > "$d/limit"; : > "$d/runs"
    printf '[Path]\nPathChanged=%s/lost\n' "$d" > "$u/bgfact-lost.path"
    printf '[Service]\nType=oneshot\nExecStart=/bin/sh -c "echo run >> %s/runs; sleep 2"\n' "$d" > "$u/bgfact-lost.service"
    printf '[Path]\nPathChanged=%s/limit\n' "$d" > "$u/bgfact-limit.path"
    printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' > "$u/bgfact-limit.service"
    systemctl daemon-reload
    systemctl start bgfact-lost.path bgfact-limit.path

    echo a >> "$d/lost"
    wait_for 5 bash -c "[[ \$(systemctl is-active bgfact-lost.service) == activating ]]"
    echo b >> "$d/lost"
    wait_for 10 bash -c "[[ \$(systemctl is-active bgfact-lost.service) == inactive ]]"
    sleep 1
    local runs; runs=$(wc -l < "$d/runs")
    if [[ $runs == 1 ]]; then
        pass "fact: a change made while a PathChanged= service runs is lost (2 changes, $runs run)"
    else
        fail "fact: a change made while a PathChanged= service runs is lost (2 changes, $runs runs): revisit bluegreen-data.path"
    fi

    local i
    for i in $(seq 20); do echo x >> "$d/limit"; sleep 0.1; done
    sleep 0.5
    local r1 r2
    r1=$(unit_prop bgfact-limit.service Result); r2=$(unit_prop bgfact-limit.path Result)
    if [[ $r1 == start-limit-hit && $r2 == unit-start-limit-hit ]]; then
        pass "fact: with the default start limit, 20 triggers in 2 s fail the service ($r1) and the path unit ($r2)"
    else
        fail "fact: with the default start limit, 20 triggers in 2 s fail the service and the path unit (got $r1, $r2)"
    fi

    systemctl stop bgfact-lost.path bgfact-limit.path bgfact-lost.service bgfact-limit.service 2>/dev/null
    rm -f "$u"/bgfact-*; rm -rf "$d"
    systemctl daemon-reload
    systemctl reset-failed 'bgfact-*' 2>/dev/null || true
}

# =============================================================================================
after_reboot() {
    section "after a reboot"
    wait_for 60 bash -c '[[ $(systemctl is-system-running) =~ ^(running|degraded)$ ]]'
    check "system is running (no failed units at all)" system_running
    check "both slots are active" systemctl is-active bluegreen@blue.service bluegreen@green.service
    local slot model
    slot=$(cat "$WORK/active" 2>/dev/null); model=$(cat "$WORK/model" 2>/dev/null)
    wait_for 20 serves "$slot" "$model"
    check "the active slot and model are kept ($slot, $model)" keeps "$slot" "$model"
    check "POST :8080 answers with that model" answers_with "$model"
    check "the path units watch again" systemctl is-active bluegreen-data.path bluegreen-train.path bluegreen-deploy.path

    section "apt remove"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q bluegreen > "$WORK/remove.log" 2>&1 \
        || { cat "$WORK/remove.log"; fail "apt-get remove bluegreen"; }
    check "no bluegreen unit is active" bash -c \
        '[[ -z $(systemctl list-units --state=active,activating,failed --plain --no-legend "bluegreen*") ]] || { systemctl list-units --all "bluegreen*"; false; }'
    # `systemctl reload nginx` returns once the signal is sent; the old workers keep
    # accepting for NGINX's own 100 ms pause before they are retired.
    wait_for 5 bash -c "! curl -s -m 2 -o /dev/null $URL/" || true
    check "nothing answers on :8080" bash -c "! curl -s -m 2 -o /dev/null $URL/"
    check "NGINX itself still runs" systemctl is-active nginx.service
    check "data and models are kept" bash -c "[[ -s $STATE/data/boston.csv && -n \$(ls $STATE/models) ]]"

    section "install again after remove"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 "$DEB" > "$WORK/reinstall.log" 2>&1 \
        || { sed 's/^/      | /' "$WORK/reinstall.log"; fail "apt-get install after remove"; }
    check "the site is enabled again" test -L /etc/nginx/sites-enabled/bluegreen
    check "the kept data and models serve again ($slot, $model)" keeps "$slot" "$model"
    check "POST :8080 answers with that model" answers_with "$model"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q bluegreen > "$WORK/remove.log" 2>&1 \
        || { cat "$WORK/remove.log"; fail "apt-get remove bluegreen"; }

    section "apt purge"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q bluegreen > "$WORK/purge.log" 2>&1 \
        || { cat "$WORK/purge.log"; fail "apt-get purge bluegreen"; }
    # systemd drops a unit whose file is gone once nothing refers to it; give it a moment.
    wait_for 5 bash -c '[[ -z $(systemctl list-units --all --plain --no-legend "bluegreen*") ]]'
    check "no bluegreen unit is left (loaded or on disk)" bash -c \
        '[[ -z $(systemctl list-units --all --plain --no-legend "bluegreen*") && -z $(systemctl list-unit-files --plain --no-legend "bluegreen*") ]] || { systemctl list-units --all "bluegreen*"; systemctl list-unit-files "bluegreen*"; systemctl show bluegreen@blue.service | grep -E "^(Referenced|Wanted|Required|Part|Before|After|Triggered|Job|Id|Names|Following)"; false; }'
    check "no enablement link is left" bash -c '! find /etc/systemd/system -name "bluegreen*" | grep .'
    check "no bluegreen user or group is left" bash -c '! getent passwd bluegreen && ! getent group bluegreen'
    check "no state, config or site is left" bash -c \
        "[[ ! -e $STATE && ! -e /etc/bluegreen && ! -e /etc/nginx/sites-available/bluegreen && ! -e /etc/nginx/sites-enabled/bluegreen ]]"
    check "NGINX still runs with a valid configuration" bash -c 'systemctl is-active nginx.service && nginx -t -q'
    check "the system is running (no failed units at all)" system_running
}

"${phase//-/_}"

passed=$(grep -c '^PASS' "$RESULTS")
failed=$(grep -c '^FAIL' "$RESULTS")
echo
if [[ $phase == after-reboot ]]; then
    echo "$passed passed, $failed failed"
else
    echo "so far ($phase): $passed checks passed, $failed failed"
fi
(( failed == 0 ))
