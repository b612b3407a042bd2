#!/usr/bin/env bash
# `make demo`: retrieve a generated study from DCMTK's dcmqrscp with `aiomove move`.
#
#   scripts/demo.sh [--with-movescu] [--out DIR]
#
# 1. writes a small CT study (2 series x 3 instances) with tests/sampledata.py (nothing is
#    downloaded);
# 2. starts dcmqrscp on a free loopback port, serving the study as AE DCMQRSCP, with the move
#    destination AIOMOVE at another free port P (its HostTable);
# 3. runs `aiomove move -v -S -aec DCMQRSCP -aem AIOMOVE +P $P -od OUT -k ... 127.0.0.1 PORT`,
#    or DCMTK's movescu with the very same arguments when --with-movescu is given;
# 4. lists what arrived and checks the count; dcmqrscp is stopped on any exit (trap).
#
# Runs from the repository root with the project venv (VENV, default .venv) and DCMTK installed
# (`make install peers`). Exit status: 0 when every instance arrived.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python
SERIES=2
INSTANCES=3

mover=aiomove
out=
while [ $# -gt 0 ]; do
  case $1 in
    --with-movescu) mover=movescu ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

for tool in dcmqrscp dcmqridx echoscu; do
  command -v $tool >/dev/null || { echo "demo: DCMTK's $tool is missing (make peers)" >&2; exit 2; }
done
if [ $mover = aiomove ]; then
  MOVE=("$VENV/bin/aiomove" move)
  if ! "${MOVE[@]}" --help >/dev/null 2>&1; then
    echo "demo: \`aiomove move\` is not available yet; use --with-movescu for DCMTK's movescu" >&2
    exit 2
  fi
else
  # DCMTK's receiver stalls on its C-STORE responses too without TCP_NODELAY=1
  MOVE=(env TCP_NODELAY=1 "$(command -v movescu)")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/aiomove-demo.XXXXXX")
qr_pid=
cleanup() {
  if [ -n "$qr_pid" ]; then kill "$qr_pid" 2>/dev/null || true; wait "$qr_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
qr_port=$(free_port)
dest_port=$(free_port)
while [ "$dest_port" = "$qr_port" ]; do dest_port=$(free_port); done
out=${out:-$work/out}
mkdir -p "$out" "$work/db"

# 1. the study: the files go straight into dcmqrscp's storage area
study_uid=$("$PY" -c '
import sys
from pathlib import Path
from tests.sampledata import make_study
info = make_study(Path(sys.argv[1]), patient_id="DEMO1", n_series=int(sys.argv[2]),
                  n_instances=int(sys.argv[3]))
print(info.study_uid)
' "$work/db" $SERIES $INSTANCES)
expected=$((SERIES * INSTANCES))
echo "demo: generated study $study_uid ($expected instances)"

# 2. dcmqrscp (DCMTK dcmqrcnf.txt): one storage area, move destination AIOMOVE -> 127.0.0.1:P
cat >"$work/dcmqrscp.cfg" <<EOF
NetworkTCPPort = $qr_port
MaxPDUSize = 16384
MaxAssociations = 16

HostTable BEGIN
aiomove = (AIOMOVE, 127.0.0.1, $dest_port)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
DCMQRSCP $work/db RW (500, 1024mb) ANY
AETable END
EOF
dcmqridx "$work/db" "$work"/db/*.dcm
# TCP_NODELAY=1: without it DCMTK's sender stalls ~40 ms per C-STORE (Nagle + delayed ACK)
TCP_NODELAY=1 dcmqrscp -c "$work/dcmqrscp.cfg" -dhl "$qr_port" >"$work/dcmqrscp.log" 2>&1 &
qr_pid=$!
for _ in $(seq 100); do
  echoscu -q -aec DCMQRSCP 127.0.0.1 "$qr_port" 2>/dev/null && break
  kill -0 "$qr_pid" 2>/dev/null || { cat "$work/dcmqrscp.log" >&2; exit 1; }
  sleep 0.1
done
echo "demo: dcmqrscp (AE DCMQRSCP) listening on 127.0.0.1:$qr_port, destination AIOMOVE on :$dest_port"

# 3. the move (movescu and aiomove move take the same arguments)
args=(-v -S -aec DCMQRSCP -aem AIOMOVE +P "$dest_port" -od "$out"
      -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$study_uid" 127.0.0.1 "$qr_port")
echo "demo: ${MOVE[*]} ${args[*]}"
status=0
"${MOVE[@]}" "${args[@]}" || status=$?

# 4. what arrived
shopt -s nullglob
arrived=("$out"/*)
for f in "${arrived[@]}"; do echo "  ${f##*/}"; done
echo "demo: ${#arrived[@]} of $expected instances arrived in $out (mover exit status $status)"
[ "$status" = 0 ] && [ "${#arrived[@]}" = "$expected" ]
