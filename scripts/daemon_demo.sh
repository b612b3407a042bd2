#!/usr/bin/env bash
# `make daemon-demo`: the retrieval daemon on SQLite, end to end, on one machine.
#
#   scripts/daemon_demo.sh [--studies N]
#
# 1. writes N small CT studies (default 3; 1 series x 3 instances each) with tests/sampledata.py
#    (nothing is downloaded);
# 2. starts DCMTK's dcmqrscp on a free loopback port serving them as AE DCMQRSCP, with the
#    daemon's AE AIOMOVED at its Storage SCP port registered as a move destination (HostTable);
# 3. writes aiomove.toml (SQLite job store, free ports) and starts `aiomove daemon` in the
#    background;
# 4. submits the first study with `aiomove jobs submit`, the others with `POST /jobs` (curl, or
#    Python when curl is missing), then polls `GET /jobs` until every job has finished
#    (DEMO_TIMEOUT seconds at most, default 120; DEMO_HTTP=curl|python picks the client);
# 5. prints the jobs, a few /metrics lines and the received files, sends the daemon SIGTERM.
#
# dcmqrscp and the daemon are stopped on any exit (trap); the temporary directory holding
# everything is removed unless KEEP=1. Runs from the repository root with the project venv
# (VENV, default .venv) and DCMTK installed (`make install peers`).
# Exit status: 0 when every job succeeded and every instance arrived.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python
AIOMOVE=$VENV/bin/aiomove
STUDIES=3
INSTANCES=3
DEMO_TIMEOUT=${DEMO_TIMEOUT:-120}
AE=AIOMOVED

while [ $# -gt 0 ]; do
  case $1 in
    --studies) STUDIES=${2:?--studies needs a number}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "daemon-demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $STUDIES =~ ^[1-9][0-9]*$ ]] || { echo "daemon-demo: --studies must be positive" >&2; exit 2; }

say() { echo "daemon-demo: $*"; }
# AIOMOVE_<KEY> variables would override the demo's configuration (a real AIOMOVE_STORE even
# its job store): the demo is self-contained
while read -r name; do unset "$name"; done < <(compgen -v AIOMOVE_ || true)
for tool in dcmqrscp dcmqridx echoscu; do
  command -v $tool >/dev/null || { say "DCMTK's $tool is missing (make peers)" >&2; exit 2; }
done
"$AIOMOVE" daemon --help >/dev/null 2>&1 \
  || { say "\`aiomove daemon\` is not available (make install)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/aiomove-daemon-demo.XXXXXX")
qr_pid=
daemon_pid=
stop_daemon() {  # SIGTERM: the daemon drains (running jobs finish, then C-CANCEL) and exits
  local pid=$daemon_pid status=0
  [ -n "$pid" ] || return 0
  daemon_pid=
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null && say "daemon did not stop within 60 s: killed" >&2
  wait "$pid" || status=$?
  return $status
}
cleanup() {
  stop_daemon || true
  if [ -n "$qr_pid" ]; then
    # its own process group (setsid): the children it forks per association go with it
    kill -TERM -- "-$qr_pid" 2>/dev/null || kill -TERM "$qr_pid" 2>/dev/null || true
    wait "$qr_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ----------------------------------------------------------------------------------
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ports=()
while [ ${#ports[@]} -lt 3 ]; do
  p=$(free_port)
  [[ " ${ports[*]-} " == *" $p "* ]] || ports+=("$p")
done
qr_port=${ports[0]} scp_port=${ports[1]} http_port=${ports[2]}
url=http://127.0.0.1:$http_port

# http METHOD PATH [JSON]: the body on stdout; fails on a connection error or HTTP status >= 400.
# DEMO_HTTP=curl|python chooses the client (default: curl when installed).
DEMO_HTTP=${DEMO_HTTP:-$(command -v curl >/dev/null && echo curl || echo python)}
case $DEMO_HTTP in
  curl) command -v curl >/dev/null || { say "DEMO_HTTP=curl but curl is missing" >&2; exit 2; } ;;
  python) ;;
  *) say "DEMO_HTTP must be curl or python" >&2; exit 2 ;;
esac
if [ "$DEMO_HTTP" = curl ]; then
  http() {
    local data=()
    [ $# -lt 3 ] || data=(-H 'content-type: application/json' --data "$3")
    curl -fsS --max-time 10 -X "$1" "${data[@]}" "$url$2"
  }
else
  http() {
    "$PY" - "$1" "$url$2" "${3-}" <<'EOF'
import sys, urllib.request
method, target, body = sys.argv[1:4]
request = urllib.request.Request(target, data=body.encode() or None, method=method)
if body:
    request.add_header("content-type", "application/json")
with urllib.request.urlopen(request, timeout=10) as answer:
    sys.stdout.write(answer.read().decode())
EOF
  }
fi

# json EXPR: evaluate a Python expression over the JSON document `d` read from stdin
json() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

daemon_log() { say "daemon log (last lines):" >&2; tail -n 30 "$work/daemon.log" >&2 || true; }

# --- 1. the studies: the files go straight into dcmqrscp's storage area --------------------------
mkdir -p "$work/db" "$work/out"
mapfile -t study_uids < <("$PY" -c '
import sys
from pathlib import Path
from tests.sampledata import make_study
for i in range(int(sys.argv[2])):
    info = make_study(Path(sys.argv[1]), patient_id=f"DEMO{i + 1}", n_series=1,
                      n_instances=int(sys.argv[3]), seed=i)
    print(info.study_uid)
' "$work/db" "$STUDIES" "$INSTANCES")
expected=$((STUDIES * INSTANCES))
say "generated $STUDIES studies ($expected instances)"

# --- 2. dcmqrscp (DCMTK dcmqrcnf.txt): the daemon's AE is a move destination -------------------
cat >"$work/dcmqrscp.cfg" <<EOF
NetworkTCPPort = $qr_port
MaxPDUSize = 16384
MaxAssociations = 16

HostTable BEGIN
aiomove = ($AE, 127.0.0.1, $scp_port)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
DCMQRSCP $work/db RW (500, 1024mb) ANY
AETable END
EOF
dcmqridx "$work/db" "$work"/db/*.dcm
# TCP_NODELAY=1: without it DCMTK's sender stalls ~40 ms per C-STORE (Nagle + delayed ACK)
TCP_NODELAY=1 setsid dcmqrscp -c "$work/dcmqrscp.cfg" -dhl "$qr_port" >"$work/dcmqrscp.log" 2>&1 &
qr_pid=$!
for _ in $(seq 100); do
  echoscu -q -aec DCMQRSCP 127.0.0.1 "$qr_port" 2>/dev/null && break
  kill -0 "$qr_pid" 2>/dev/null || { cat "$work/dcmqrscp.log" >&2; exit 1; }
  sleep 0.1
done
say "dcmqrscp (AE DCMQRSCP) on 127.0.0.1:$qr_port; move destination $AE -> 127.0.0.1:$scp_port"

# --- 3. the daemon: SQLite job store, Storage SCP and HTTP API on free loopback ports ------------
config=$work/aiomove.toml
cat >"$config" <<EOF
[daemon]
store = "sqlite+aiosqlite:///$work/jobs.db"
output = "$work/out"
ae_title = "$AE"
host = "127.0.0.1"
port = $scp_port
http_port = $http_port
workers = 2
poll_interval = 0.5
log_json = true

[peers.PACS]
host = "127.0.0.1"
port = $qr_port
ae_title = "DCMQRSCP"
EOF
say "configuration $config:"
sed '/./s/^/  /' "$config"
"$AIOMOVE" daemon --config "$config" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
healthy=0
for _ in $(seq 600); do
  if http GET /health >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
[ $healthy = 1 ] || { say "the daemon did not become healthy" >&2; daemon_log; exit 1; }
say "aiomove daemon (pid $daemon_pid): Storage SCP 127.0.0.1:$scp_port, HTTP API $url" \
  "(client: $DEMO_HTTP)"

# --- 4. jobs: one from the command line, the rest over HTTP ------------------------------------
say "\$ aiomove jobs submit --config $config --peer PACS -k StudyInstanceUID=${study_uids[0]}"
"$AIOMOVE" jobs submit --config "$config" --peer PACS -k "StudyInstanceUID=${study_uids[0]}" \
  | json '"  job %(id)s: %(state)s" % d["jobs"][0]'
if [ "$STUDIES" -gt 1 ]; then
  body=$("$PY" -c '
import json, sys
jobs = [{"peer": "PACS", "keys": {"StudyInstanceUID": uid}} for uid in sys.argv[1:]]
print(json.dumps({"jobs": jobs}))
' "${study_uids[@]:1}")
  say "\$ POST $url/jobs $body"
  http POST /jobs "$body" \
    | json '"\n".join("  job %(id)s: %(state)s" % r["job"] for r in d["jobs"])'
fi

# `GET /jobs` until no job is queued or running
summary='sum(j["state"] in ("queued", "running") for j in d["jobs"])'
finished=0
for _ in $(seq $((DEMO_TIMEOUT * 2))); do
  if [ "$(http GET /jobs | json "$summary")" = 0 ]; then finished=1; break; fi
  kill -0 "$daemon_pid" 2>/dev/null || { say "the daemon exited" >&2; daemon_log; exit 1; }
  sleep 0.5
done
[ $finished = 1 ] || say "jobs still unfinished after $DEMO_TIMEOUT s" >&2

# --- 5. what happened --------------------------------------------------------------------------
say "\$ GET $url/jobs"
jobs=$(http GET /jobs)
json '"\n".join("  job %s %-9s attempts %s  %s/%s instances  %s bytes  %s" % (
    j["id"], j["state"], j["attempts"], j["progress"]["received"], j["progress"]["expected"],
    j["progress"]["bytes"], j["error"] or j["keys"]["StudyInstanceUID"]) for j in d["jobs"])' \
  <<<"$jobs"
succeeded=$(json 'sum(j["state"] == "succeeded" for j in d["jobs"])' <<<"$jobs")
say "\$ GET $url/metrics (excerpt)"
http GET /metrics \
  | grep -E '^aiomove_(jobs\{|jobs_finished_total|instances_received_total|bytes_received_total)' \
  | sed 's/^/  /' || true
say "received files ($work/out):"
# staging directories are hidden (dot names): only delivered files are listed
(cd "$work/out" && find . -path '*/.*' -prune -o -type f -print | sort | sed 's/^\.\//  /')
arrived=$(cd "$work/out" && find . -path '*/.*' -prune -o -type f -print | wc -l)

status=0
stop_daemon || status=$?
say "daemon stopped by SIGTERM (exit status $status)"
say "$succeeded of $STUDIES jobs succeeded, $arrived of $expected instances arrived"
if [ "$succeeded" != "$STUDIES" ] || [ "$arrived" != "$expected" ]; then daemon_log; exit 1; fi
