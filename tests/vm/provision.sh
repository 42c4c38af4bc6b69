#!/usr/bin/env bash
# Installs the bluegreen package and what tests/vm/e2e.sh uses, on a Debian 12 system.
# Shared by tests/vm/run (an nspawn container whose root file system already holds every
# dependency, and which has no network) and the Vagrantfile (a VM that fetches them).
#
#   provision.sh [path/to/bluegreen_*.deb]   (default: the newest in /vagrant/target/debian)
set -euo pipefail

deb=${1:-$(ls -t /vagrant/target/debian/bluegreen_*.deb 2>/dev/null | head -n1 || true)}
[[ -n $deb && -f $deb ]] || { echo "provision: no .deb given or found; hint: cargo deb" >&2; exit 2; }

# Only what is missing is fetched, so an offline system that has it all needs no mirror.
missing=()
for pkg in nginx curl jq wrk; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
export DEBIAN_FRONTEND=noninteractive
if (( ${#missing[@]} )); then
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

start=$(date +%s%3N)
# No progress bars: this output ends up in CI logs.
apt-get install -y -q -o Dpkg::Use-Pty=0 "$(realpath "$deb")"
echo "provision: installed $(dpkg-query -W -f='${Package} ${Version}' bluegreen) in $(( $(date +%s%3N) - start )) ms"
