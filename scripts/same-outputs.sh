#!/usr/bin/env bash
# Shows that two builds of mb-stats write byte-identical outputs: every analysis command over
# data/demo-results.parquet and a synthetic learning-dynamics table, in every -o format, plus
# `report` and the three quickstarts' `run` (linear probe, masked-LM minimal pairs,
# fine-tuning: each results.parquet and printed summary).
#
#   scripts/same-outputs.sh OLD_BINARY NEW_BINARY
#
# Exit 0 and "identical" when every file matches; otherwise the differing files are listed.
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mb-stats-target}"
old=$(realpath "$1"); new=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
demo=$root/data/demo-results.parquet
dyn=$work/dynamics.parquet
(cd "$root" && cargo run --release --quiet --example make_dynamics_data -- "$dyn")

outputs() {
  local bin=$1 out=$2
  mkdir -p "$out" && cd "$out"   # relative output names: the notebook records the command line
  local pair=(--base group=base --treatment group=cda --paired)
  for ext in csv json md tex; do
    "$bin" bootstrap "$demo" "${pair[@]}" --metric accuracy -o "bootstrap.$ext" >/dev/null
    "$bin" bootstrap "$demo" --by task --metric f1 -o "bootstrap-by.$ext" >/dev/null
    "$bin" seeds "$demo" "${pair[@]}" --nboot 300 -o "seeds.$ext" >/dev/null
    "$bin" variance "$demo" --nboot 300 -o "variance.$ext" >/dev/null
    "$bin" power "$demo" "${pair[@]}" --effect 0.03 --nboot 100 --simulations 40 --seeds 3,5,10 -o "power.$ext" >/dev/null
    "$bin" curve "$dyn" --nboot 200 -o "curve.$ext" >/dev/null
  done
  "$bin" bootstrap "$demo" "${pair[@]}" --nboot 300 >"bootstrap.stdout"
  "$bin" seeds "$demo" "${pair[@]}" --nboot 300 >"seeds.stdout"
  "$bin" variance "$demo" --by task --nboot 300 >"variance.stdout"
  "$bin" bootstrap "$demo" "${pair[@]}" --nboot 200 --samples "samples.parquet" >/dev/null
  "$bin" curve "$dyn" --nboot 200 >"curve.stdout"
  "$bin" report "$demo" "${pair[@]}" --metric accuracy,f1 --effect 0.03 --out report >/dev/null
  for quickstart in quickstart quickstart-blimp quickstart-finetune; do
    "$bin" run "$root/experiments/$quickstart.toml" --out "$quickstart" >"$quickstart.stdout" 2>/dev/null
    rm -rf "$quickstart/runs"   # per-unit run files; results.parquet holds their rows
  done
}

outputs "$old" "$work/old"
outputs "$new" "$work/new"
# The report names the binary it ran in its notebook; the quickstart prints its wall time.
sed -i -E 's/ in [0-9.]+ s/ in T s/' "$work"/{old,new}/quickstart*.stdout
if diff -r "$work/old" "$work/new"; then
  echo "identical: $(find "$work/old" -type f | wc -l) files"
else
  exit 1
fi
