#!/usr/bin/env bash
# Compares tokenlife's verdicts on the attack vectors with npm `jose`'s.
# Needs Node.js 20 and npm (the npm registry). Prints one line per vector and the
# disagreements (accept vs reject) at the end; SECURITY.md explains each of them.
set -euo pipefail
cd "$(dirname "$0")"
cargo run -q -p examples --example attack_vectors > vectors.json
[ -d node_modules/jose ] || npm install --no-audit --no-fund --silent
node jose-verdicts.mjs vectors.json > verdicts.jsonl
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("verdicts.jsonl")]
disagree = []
for r in rows:
    t_ok, j_ok = r["tokenlife"] == "ok", r["jose"] == "ok"
    mark = "  " if t_ok == j_ok else "!!"
    print(f'{mark} {r["name"]:<48} tokenlife={r["tokenlife"]:<22} jose={r["jose"]}')
    if t_ok != j_ok:
        disagree.append(r["name"])
print(f"\n{len(rows)} vectors, {len(rows) - len(disagree)} agree on accept/reject, {len(disagree)} disagree:")
for d in disagree:
    print("  -", d)
PY
