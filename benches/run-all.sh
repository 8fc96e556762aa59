#!/usr/bin/env bash
# The benchmark suite: every benchmark, one after the other in one run on this machine, one
# Markdown file with the machine's details, and README's tables regenerated from it.
#
#   benches/run-all.sh [--quick] [--readme FILE | --no-readme]
#
#   --quick      short runs, to check that the suite works: writes its file to
#                /tmp/hookd-bench-quick.md, puts benches/results back as it was, and leaves
#                README.md alone unless --readme is given (its numbers are not worth publishing)
#   --readme F   regenerate the tables in F instead of README.md
#   --no-readme  regenerate no tables
#
# In order: storage micro-benchmarks (`cargo bench -p hookd-storage --bench append`), ingest
# vs nginx (benches/ingest.sh), end-to-end deliveries vs nginx (benches/deliver.sh), and, when
# those scripts exist, start-up time and RSS (benches/startup.sh) and the cost of payload
# schemas (benches/schema.sh), then filters, ordered endpoints, batch ingest, the footprint, and
# which layer of ingest costs the ratio to nginx (benches/layers.sh, at 64 and 256
# connections). Each writes benches/results/<name>.md (this script writes
# append.md from the bench's output); every wrk run is also recorded, for a table of latency
# percentiles (latency.md). All of it, with the machine's details (suite.md), goes into
# benches/results/README-table.md, and each README block between `<!-- bench:<name>:start -->`
# and `<!-- bench:<name>:end -->` gets the table of that name. About 20 minutes (--quick: 4).
# Installs wrk and nginx from Debian's packages if missing (benches/common.sh).
#
# Every benchmark shares the cores with whatever else runs: publish only a run made on a quiet
# machine (the load average is recorded in suite.md, and a busy start is warned about).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
README=README.md
README_SET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --readme) README=${2:?--readme needs a file}; README_SET=1; shift ;;
    --no-readme) README=; README_SET=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ] && [ "$README_SET" = 0 ]; then README=; fi

if [ "$QUICK" = 1 ]; then
  APPEND_SECS=1 APPEND_REPS=1 INGEST_SECS=2 INGEST_ROUNDS=1 DELIVER_SECS=2 SCHEMA_SECS=2
  SCHEMA_ROUNDS=1 STARTUP_ENV=(STARTUP_MESSAGES=10000 STARTUP_PENDING=30000) FILTER_MSGS=300 FILTER_ROUNDS=1 FOOTPRINT_SECS=10
  FIFO_MSGS=2000 FIFO_ROUNDS=1 LAYERS_ROUNDS=1
else
  APPEND_SECS=3 APPEND_REPS=3 INGEST_SECS=10 INGEST_ROUNDS=3 DELIVER_SECS=10 SCHEMA_SECS=10
  SCHEMA_ROUNDS=3 STARTUP_ENV=() FILTER_MSGS=2000 FILTER_ROUNDS=3 FOOTPRINT_SECS=60
  FIFO_MSGS=20000 FIFO_ROUNDS=3 LAYERS_ROUNDS=2
fi
RESULTS=benches/results
OUT=$RESULTS/README-table.md
mkdir -p "$RESULTS"
TMP=$(mktemp -d /var/tmp/hookd-run-all.XXXXXX)
touch "$TMP/stamp" # results newer than this come from this run
if [ "$QUICK" = 1 ]; then
  OUT=/tmp/hookd-bench-quick.md
  cp -a "$RESULTS/." "$TMP/saved/" 2>/dev/null || mkdir -p "$TMP/saved"
fi
finish() {
  if [ "$QUICK" = 1 ]; then # benches/results as it was
    for f in "$RESULTS"/*.md; do
      [ "$f" -nt "$TMP/stamp" ] || continue
      if [ -f "$TMP/saved/${f##*/}" ]; then cp -p "$TMP/saved/${f##*/}" "$f"; else rm -f "$f"; fi
    done
  fi
  rm -rf "$TMP"
}
trap finish EXIT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# The code measured, taken before the benchmarks rewrite their results and README's tables.
COMMIT=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- . ':!benches/results' ':!README.md' 2>/dev/null ||
  COMMIT="$COMMIT with uncommitted changes"
if awk -v load="${LOAD_START%% *}" 'BEGIN { exit !(load >= 0.5) }'; then
  echo "run-all.sh: warning: load average $LOAD_START at the start; numbers from a busy machine are not worth publishing" >&2
fi

# Tools and the release build, once, through common.sh (which installs wrk and nginx).
(
  # shellcheck source=benches/common.sh
  source benches/common.sh
)

# Every wrk run of the scripts goes through this wrapper, which keeps its arguments, the kind
# of server it ran against (nginx names itself in `Server:`) and its output.
REAL_WRK=$(command -v wrk)
mkdir -p "$TMP/bin" "$TMP/wrk"
cat > "$TMP/bin/wrk" <<SH
#!/usr/bin/env bash
log="$TMP/wrk/\$(date +%s%N).txt"
url=\${@: -1}
server=\$(curl -s -o /dev/null -D - "\$url" | awk -F': ' 'tolower(\$1) == "server" {print \$2}' | tr -d '\r')
printf '# step %s\n# server %s\n# args %s\n' "\${BENCH_STEP:-}" "\${server:-hookd}" "\$*" > "\$log"
"$REAL_WRK" "\$@" | tee -a "\$log"
exit "\${PIPESTATUS[0]}"
SH
chmod +x "$TMP/bin/wrk"
export PATH="$TMP/bin:$PATH"

FAILED=()
# step NAME COMMAND...: runs one benchmark; a failure is reported and the suite goes on.
step() {
  local name=$1 start=$SECONDS
  shift
  echo "== $name: $*" >&2
  if ! BENCH_STEP=$name "$@"; then
    echo "run-all.sh: $name failed" >&2
    FAILED+=("$name")
  fi
  echo "== $name: $((SECONDS - start)) s" >&2
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
MEM=$(free -g | awk '/Mem/ {print $2}')
FS=$(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T /var/tmp | xargs)
RUSTC=$(rustc --version)
MACHINE="$(nproc) cores ($CPU), $MEM GiB, kernel $(uname -r), $(findmnt -n -o FSTYPE,SOURCE -T /var/tmp | xargs) at /var/tmp, $RUSTC"

append() {
  BENCH_SECS=$APPEND_SECS BENCH_REPS=$APPEND_REPS cargo bench -q -p hookd-storage --bench append \
    | tee "$TMP/append.txt"
  {
    echo "Machine: $MACHINE, $(date -u +%F); median of $APPEND_REPS runs of $APPEND_SECS s each (\`BENCH_SECS=$APPEND_SECS BENCH_REPS=$APPEND_REPS\`)."
    echo
    grep '^|' "$TMP/append.txt"
  } > "$RESULTS/append.md"
}

step append append
step ingest bash benches/ingest.sh "$INGEST_SECS" "$INGEST_ROUNDS"
step ingest-c256 bash benches/ingest.sh "$INGEST_SECS" "$INGEST_ROUNDS" 256
step deliver bash benches/deliver.sh "$DELIVER_SECS"
if [ -f benches/startup.sh ]; then
  step startup env "${STARTUP_ENV[@]}" bash benches/startup.sh
fi
if [ -f benches/schema.sh ]; then
  step schema bash benches/schema.sh "$SCHEMA_SECS" "$SCHEMA_ROUNDS"
fi
step filter bash benches/filter.sh "$FILTER_MSGS" "$FILTER_ROUNDS"
step fifo bash benches/fifo.sh "$FIFO_MSGS" "$FIFO_ROUNDS"
step batch bash benches/batch.sh "$INGEST_SECS" "$INGEST_ROUNDS"
step layers bash benches/layers.sh "$INGEST_SECS" "$LAYERS_ROUNDS"
step layers-c256 bash benches/layers.sh "$INGEST_SECS" "$LAYERS_ROUNDS" 256
step footprint bash benches/footprint.sh "$FOOTPRINT_SECS"

# Latency percentiles of the wrk runs that measure a rate (not those that only fill a store,
# such as deliver.sh's dead endpoint and startup.sh's backlog).
python3 - "$TMP/wrk" > "$RESULTS/latency.md" <<'PY'
import pathlib, re, sys

rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.txt")):
    text = f.read_text()
    meta = dict(re.findall(r"^# (\w+) ?(.*)$", text, re.M))
    args = meta.get("args", "").split()
    url = args[-1] if args else ""
    path = re.sub(r"^https?://[^/]+", "", url)
    if meta.get("step") not in ("ingest", "ingest-c256", "deliver", "schema") or "/dead/" in path:
        continue
    opt = lambda flag: next((a[len(flag):] for a in args if a.startswith(flag)), "")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    pct = re.search(r"latency percentiles \(us\): p50 (\d+) p90 (\d+) p99 (\d+) p99\.9 (\d+) max (\d+)", text)
    ms = lambda us: f"{int(us) / 1000:.2f}"
    lat = [ms(v) for v in pct.groups()] if pct else ["-"] * 5
    server = meta.get("server", "")
    who = "nginx" if "nginx" in server else "hookd"
    rows.append(f"| {meta.get('step', '')} | {who} | {path} | {opt('-c')} | {opt('-d')} | "
                f"{rate.group(1) if rate else '-'} | " + " | ".join(lat) + " |")
print("wrk (closed loop: each connection waits for its answer), every run of the suite in order; "
      "latency in ms from wrk's own histogram.")
print()
print("| benchmark | server | path | connections | duration | req/s | p50 | p90 | p99 | p99.9 | max |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
PY

# Issue 17's bars against this run's figures, from the files the steps wrote (a row whose
# benchmark did not run in this run says so).
python3 - "$RESULTS" "$TMP/stamp" > "$RESULTS/issue17.md" <<'PY'
import os, re, statistics, sys

results, stamp = sys.argv[1], os.path.getmtime(sys.argv[2])

def text(name):
    path = os.path.join(results, name + ".md")
    if not os.path.exists(path) or os.path.getmtime(path) < stamp:
        return None
    return open(path).read()

def column(t, header, col):
    """The values of a column (by header name) of the table whose header row starts with `header`."""
    lines = [l for l in t.splitlines() if l.startswith("|")]
    head = next((l for l in lines if l.startswith(header)), None)
    if head is None:
        return []
    names = [c.strip() for c in head.strip("|").split("|")]
    i = names.index(col)
    rows = [l for l in lines[lines.index(head) + 2:] if re.match(r"\| \d", l)]
    return [c.strip() for c in (r.strip("|").split("|")[i] for r in rows)]

def num(s):
    m = re.search(r"[\d.]+", s or "")
    return float(m.group()) if m else None

def ms(s):
    v = num(s)
    return None if v is None else v / 1000 if s.strip().endswith("us") else v

rows = []
def row(measure, value, shown, bar, ok):
    """`shown` formats the value; a value of None is a benchmark that did not run."""
    if value is None:
        rows.append(f"| {measure} | - | {bar} | not run |")
    else:
        rows.append(f"| {measure} | {shown(value)} | {bar} | {'yes' if ok(value) else 'no'} |")

def median_of(name, col):
    """The median of a column over the rounds of benchmark `name`, and the rounds."""
    t = text(name)
    r = [num(x) for x in column(t, "| round", col)] if t else []
    return (statistics.median(r) if r else None), r

def found(name, pattern):
    """The number `pattern`'s first group finds in benchmark `name`'s table, if it ran."""
    m = re.search(pattern, text(name) or "")
    return float(m.group(1)) if m else None

def ratio_row(measure, name, col, bar):
    v, r = median_of(name, col)
    row(measure, v, lambda v: f"{v:.2f} (median of {r})", f">= {bar}", lambda x: x >= bar)

ratio_row("durable ingest, 1 KiB, c=64, hookd / nginx", "ingest", "hookd / nginx", 0.75)
t = text("ingest")
p99 = [ms(x) for x in column(t, "| round", "hookd p99")] if t else []
v = max(p99) if p99 else None
row("hookd p99 at c=64 (worst round)", v, lambda v: f"{v:.2f} ms", "<= 5 ms", lambda x: x <= 5)
ratio_row("durable ingest at c=256, hookd / nginx at c=256", "ingest-c256", "hookd / nginx", 1.0)
v = found("deliver", r"\| deliveries / nginx rate \| ([\d.]+)")
row("end-to-end deliveries/s, ratio to nginx", v, lambda v: f"{v}", ">= 0.45", lambda x: x >= 0.45)
ratio_row("batch ingest events/s / nginx 1 KiB req/s", "batch", "events/s / nginx 1 KiB req/s", 2)
for measure, name, pattern, unit, most in [
    ("RSS idle (one app, no traffic)", "footprint", r"\| RSS idle[^|]*\| ([\d.]+) MiB", "{:.0f} MiB", 32),
    ("RSS with 1M deliveries pending", "startup", r"deliveries pending, RSS (\d+) MiB", "{:.0f} MiB", 256),
    ("the same, 3 s after a restart", "startup", r"\| RSS 3 s after that restart \| (\d+) MiB", "{:.0f} MiB", 256),
    ("release binary, stripped", "footprint", r"\| release binary, stripped \| ([\d.]+) MiB", "{:.1f} MiB", 15),
]:
    v = found(name, pattern)
    bar = f"<= {most} MiB"
    row(measure, v, lambda v, unit=unit: unit.format(v), bar, lambda x, most=most: x <= most)
v = found("footprint", r"\| CPU idle[^|]*\| ([\d.]+)% of one core")
row("idle CPU", v, lambda v: f"{v}% of one core", "<= 0.5%", lambda x: x <= 0.5)

def layer_row(measure, name, col):
    """Context, not a bar: the median ratio to nginx of a column of benches/layers.sh."""
    t = text(name)
    r = [float(m.group(1)) for m in (re.search(r"\(([\d.]+)\)", x) for x in column(t, "| round", col)) if m] if t else []
    shown = f"{statistics.median(r):.2f} (median of {r})" if r else "-"
    rows.append(f"| {measure} | {shown} | - | {'context' if r else 'not run'} |")

layer_row("context: the same POST refused after auth and JSON (422), c=256 / nginx", "layers-c256", "422 after JSON")
layer_row("context: stored without waiting for fdatasync (interval), c=64 / nginx", "layers", "202 interval")
print("Issue 17's bars against this run (each figure from its benchmark's table in this file).")
print()
print("| measure | this run | bar | met |")
print("|---|---|---|---|")
print("\n".join(rows))
PY

{
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPU | $CPU |"
  echo "| cores | $(nproc) |"
  echo "| memory | $MEM GiB |"
  echo "| kernel | $(uname -r) |"
  echo "| filesystem (/var/tmp, where every benchmark writes) | $FS |"
  echo "| Rust | $RUSTC |"
  echo "| nginx, wrk | $(nginx -v 2>&1 | cut -d' ' -f3), $("$REAL_WRK" -v 2>&1 | head -1 | cut -d' ' -f2) |"
  echo "| date (UTC) | $(date -u '+%F %H:%M') |"
  echo "| git commit | $COMMIT |"
  echo "| load average at start, at end | $LOAD_START; $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| command | \`benches/run-all.sh$([ "$QUICK" = 1 ] && echo ' --quick')\` |"
} > "$RESULTS/suite.md"

# The one file with everything from this run.
section() { # NAME TITLE
  if [ "$RESULTS/$1.md" -nt "$TMP/stamp" ]; then
    printf '## %s\n\n' "$2"
    cat "$RESULTS/$1.md"
    echo
  fi
}
{
  echo "# hookd benchmarks"
  echo
  echo "Written by \`benches/run-all.sh\`; README's tables are copied from here."
  echo
  if [ "$QUICK" = 1 ]; then
    echo "**A --quick run: short runs to check the suite, not numbers to publish.**"
    echo
  fi
  section suite "Machine"
  section issue17 "Issue 17's bars"
  section append "Storage: append throughput and latency (\`cargo bench -p hookd-storage --bench append\`)"
  section ingest "Ingest: hookd vs nginx (\`benches/ingest.sh $INGEST_SECS $INGEST_ROUNDS\`)"
  section ingest-c256 "Ingest at 256 connections: hookd vs nginx (\`benches/ingest.sh $INGEST_SECS $INGEST_ROUNDS 256\`)"
  section deliver "End-to-end deliveries vs nginx, and RSS (\`benches/deliver.sh $DELIVER_SECS\`)"
  section latency "Latency percentiles"
  section startup "Start-up time and RSS (\`benches/startup.sh\`)"
  section schema "Payload schemas: what enforcement costs (\`benches/schema.sh $SCHEMA_SECS $SCHEMA_ROUNDS\`)"
  section footprint "Footprint: binary size, idle RSS and CPU (\`benches/footprint.sh $FOOTPRINT_SECS\`)"
  section batch "Batch ingest vs nginx (\`benches/batch.sh $INGEST_SECS $INGEST_ROUNDS\`)"
  section filter "Payload filters: what 100 of them cost in fan-out (\`benches/filter.sh $FILTER_MSGS $FILTER_ROUNDS\`)"
  section fifo "Ordered endpoints: one FIFO endpoint with 100 keys vs unordered (\`benches/fifo.sh $FIFO_MSGS $FIFO_ROUNDS\`)"
  section layers "Which layer of ingest costs the ratio (\`benches/layers.sh $INGEST_SECS $LAYERS_ROUNDS\`)"
  section layers-c256 "The same at 256 connections (\`benches/layers.sh $INGEST_SECS $LAYERS_ROUNDS 256\`)"
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo "Failed in this run: ${FAILED[*]}."
  fi
} > "$OUT"
echo "run-all.sh: wrote $OUT" >&2

# README: each block gets the table of its name, if this run made one.
if [ -n "$README" ]; then
  blocks=()
  for name in suite issue17 append ingest ingest-c256 deliver latency startup schema filter fifo batch footprint layers layers-c256; do
    [ "$RESULTS/$name.md" -nt "$TMP/stamp" ] && blocks+=("$name=$RESULTS/$name.md")
  done
  python3 - "$README" "${blocks[@]}" <<'PY'
import os, sys

readme, blocks = sys.argv[1], sys.argv[2:]
text = open(readme).read()
for block in blocks:
    name, path = block.split("=", 1)
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        print(f"run-all.sh: {readme} has no bench:{name} block; not copied", file=sys.stderr)
        continue
    body = open(path).read().strip("\n")
    text = f"{text[:i + len(start)]}\n{body}\n{text[j:]}"
    print(f"run-all.sh: {readme}: bench:{name} regenerated", file=sys.stderr)
tmp = f"{readme}.run-all.tmp"
with open(tmp, "w") as f:
    f.write(text)
os.replace(tmp, readme)
PY
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "run-all.sh: failed: ${FAILED[*]}" >&2
  exit 1
fi
