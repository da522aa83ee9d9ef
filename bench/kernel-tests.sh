#!/usr/bin/env bash
# Kernel tests under nextest against their single boots, whole processes, in one run:
#
#   wall  the wall time of `cargo nextest run --test fifty` on the fixture project
#         tests/kernels/rust-ktest (fifty quick kernel tests; nextest lists them through the
#         runner, then runs each in its own machine, as many at a time as there are cores)
#   sum   the sum, over the fifty tests, of the time of one single-test boot
#         `cargo-image-runner <fifty executable> --exact NAME` (each measured by hyperfine)
#
# and the target `wall <= sum / cores * 1.1`: nextest's parallel machines should cost no more
# than a tenth above perfect division of the single boots over the cores.
#
# Usage: bench/kernel-tests.sh          (builds the release runner and the fixture first)
# Environment:
#   NO_BUILD=1                 use target/release/cargo-image-runner as it is
#   RUNS=5                     hyperfine runs of each measurement (default 5)
#
# Needs hyperfine, cargo-nextest, QEMU (qemu-system-x86_64).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
for tool in hyperfine qemu-system-x86_64; do
    command -v "$tool" >/dev/null || { echo "kernel-tests.sh: \`$tool\` is needed" >&2; exit 1; }
done
cargo nextest --version >/dev/null 2>&1 || { echo "kernel-tests.sh: cargo-nextest is needed" >&2; exit 1; }

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$repo" && cargo build --release -p image-runner-cli)
fi
runner=$repo/target/release/cargo-image-runner
runs=${RUNS:-5}
cores=$(nproc)

work=$(mktemp -d "${TMPDIR:-/tmp}/kernel-tests-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
project=$repo/tests/kernels/rust-ktest
export CARGO_TARGET_DIR=$work/target
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=$runner

# The fixture's test kernels (the executable's path is in cargo's own words).
built=$(cd "$project" && cargo test --no-run --test fifty 2>&1)
exe=$(sed -n 's/.*tests\/fifty\.rs (\(.*\))$/\1/p' <<<"$built")
[[ -x $exe ]] || { echo "kernel-tests.sh: no fifty executable in:" >&2; echo "$built" >&2; exit 1; }
names=$("$runner" "$exe" --list --format terse | sed 's/: test$//')
count=$(wc -l <<<"$names")

# One measurement per single-test boot, all in one hyperfine run (parameter list).
list=$(paste -sd, <<<"$names")
cd "$project"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
hyperfine --runs "$runs" --warmup 1 --style none -N \
    -L name "$list" "$runner $exe --exact {name}" \
    --export-json "$work/single.json" >/dev/null 2>"$work/hyperfine.log"
# nextest as it comes; with one test thread more than cores (a machine's start and end, spent
# in exec, page faults and process exit, leave a core idle that a third QEMU fills); and
# without nextest's double spawn (an extra exec of nextest before each test, for its own signal
# handling; the runner puts QEMU in a process group of its own anyway).
hyperfine --runs "$runs" --warmup 1 --style none \
    "cargo nextest run --test fifty --color never" \
    "cargo nextest run --test fifty --color never --test-threads $((cores + 1))" \
    "NEXTEST_DOUBLE_SPAWN=0 cargo nextest run --test fifty --color never" \
    --export-json "$work/nextest.json" >/dev/null 2>>"$work/hyperfine.log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work/single.json" "$work/nextest.json" "$cores" "$count" "$runs" "$load_before" "$load_after" <<'EOF'
import json, sys, subprocess
single = json.load(open(sys.argv[1]))["results"]
nextest, nextest_more_threads, nextest_single_spawn = json.load(open(sys.argv[2]))["results"]
cores, count, runs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
load_before, load_after = sys.argv[6], sys.argv[7]
means = [r["mean"] for r in single]
total = sum(means)
wall = nextest["mean"]
target = total / cores * 1.1
qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
nextest_version = subprocess.run(["cargo", "nextest", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
print(f"kernel tests: {count} tests of the fixture `fifty`, {cores} cores, {runs} runs each (means)")
print(f"  {qemu}; {nextest_version}; TCG")
print(f"  single boot (cargo-image-runner EXE --exact NAME): mean {total / count:.3f} s, "
      f"min {min(means):.3f} s, max {max(means):.3f} s")
print(f"  sum of the {count} single boots:        {total:7.3f} s")
print(f"  cargo nextest run (wall):              {wall:7.3f} s  (min {nextest['min']:.3f} s, max {nextest['max']:.3f} s)")
print(f"  target: wall <= sum / cores * 1.1 =    {target:7.3f} s")
print(f"  wall / (sum / cores) = {wall / (total / cores):.2f}: target {'MET' if wall <= target else 'NOT met'}")
for label, result in ((f"with --test-threads {cores + 1}", nextest_more_threads),
                      ("with NEXTEST_DOUBLE_SPAWN=0", nextest_single_spawn)):
    other = result["mean"]
    print(f"  {label + ' (wall):':38} {other:7.3f} s  (min {result['min']:.3f} s, max {result['max']:.3f} s): "
          f"{other / (total / cores):.2f}, target {'MET' if other <= target else 'NOT met'}")
# The same from each measurement's fastest run: on a machine shared with other work, the
# minimum is the figure least disturbed by it.
total_min = sum(r["min"] for r in single)
for label, result in (("cargo nextest run", nextest),
                      (f"--test-threads {cores + 1}", nextest_more_threads),
                      ("NEXTEST_DOUBLE_SPAWN=0", nextest_single_spawn)):
    ratio = result["min"] / (total_min / cores)
    print(f"  fastest runs: {label}: {result['min']:.3f} s against sum {total_min:.3f} s / {cores} "
          f"= {ratio:.2f}, target {'MET' if ratio <= 1.1 else 'NOT met'}")
# CPU time (user + system, children included): what the cores had to give, whatever else ran.
cpu_single = sum(r["user"] + r["system"] for r in single)
cpu_nextest = nextest["user"] + nextest["system"]
print(f"  CPU time: single boots {cpu_single:.3f} s in all, nextest {cpu_nextest:.3f} s "
      f"(so on {cores} idle cores nextest needs at least {cpu_nextest / cores:.3f} s)")
print(f"  load average (1, 5, 15 min) before: {load_before}; after: {load_after}")
EOF
