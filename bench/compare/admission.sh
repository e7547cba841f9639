#!/bin/bash
# The known-sources-first measurement of docs/benchmarks.md: restart sipgw with CONFIG, run one
# `sipgw-bench mixed --attack flood` with the given options, print the legitimate figures and the
# gateway counter differences. Run from the directory of docs/benchmarks.md's setup.
# usage: bench/compare/admission.sh CONFIG LABEL [mixed options...]
root=$(cd "$(dirname "$0")/../.." && pwd)
B=$root/target/release/sipgw-bench; S=$root/target/release/sipgw
cfg=$1; label=$2; shift 2
timeout 120 $S run --config $cfg > gw-$label.log 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null' EXIT
sleep 1
before=$($S stats --config $cfg --json)
out=$(timeout 60 $B mixed --config $cfg --duration 10 --rate 200 --attack flood "$@" 2>&1)
after=$($S stats --config $cfg --json)
echo "== $label $*"
echo "$out" | grep -E "success rate|p50 / p90|attack sent|answers received" | head -4
python3 - "$before" "$after" <<'PY'
import json,sys
b=json.loads(sys.argv[1]); a=json.loads(sys.argv[2])
for k in ["sipgw_rx_datagrams_total","sipgw_challenged_total","sipgw_overload_shed_total","sipgw_forwarded_digest_total"]:
    print(f"  {k} {a.get(k,0)-b.get(k,0)}")
PY
kill $gw; wait $gw 2>/dev/null
