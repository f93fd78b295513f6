#!/usr/bin/env bash
# Measures dagger against the goals its issues set and prints a table.
# Usage: bench/run.sh [quick]   (quick skips the 100 000-task, 1 GiB and Kubernetes runs)
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dagger" ./cmd/dagger
dagger="$tmp/dagger"
export DAGGER_HOME="$tmp/store"

# best N CMD...: the fastest of N runs of CMD, in milliseconds.
best() {
	local n=$1 best=
	shift
	for _ in $(seq "$n"); do
		local t0 t1 ms
		t0=$(date +%s%N)
		"$@" >/dev/null
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
	done
	echo "$best"
}

# A chain of steps, to check.
linear() {
	local n=$1
	echo 'def start(ctx):'
	echo '    next_step(s1)'
	for i in $(seq 1 $((n - 3))); do
		printf 'def s%d(ctx):\n    ctx.v%d = %d\n    next_step(s%d)\n' "$i" "$i" "$i" $((i + 1))
	done
	printf 'def s%d(ctx):\n    next_step(finish)\n' $((n - 2))
	printf 'def finish(ctx):\n    pass\n'
}
linear 10000 >"$tmp/linear10k.star"


# 1 GiB of artifacts: 16 of 64 MiB, each different, written by one step
# and read back by the next.
{
	echo '"""Writes 1 GiB of artifacts, 16 of 64 MiB, and reads them back."""'
	echo 'def start(ctx):'
	echo '    next_step(write)'
	echo 'def write(ctx):'
	for i in $(seq 0 15); do
		printf '    ctx.a%d = bytes("%02d" + "x" * (64 * 1024 * 1024 - 2))\n' "$i" "$i"
	done
	echo '    next_step(read)'
	echo 'def read(ctx):'
	printf '    ctx.total = %s\n' "$(for i in $(seq 0 15); do printf 'len(ctx.a%d) + ' "$i"; done)0"
	echo '    next_step(finish)'
	echo 'def finish(ctx):'
	echo '    print(ctx.total)'
} >"$tmp/gib.star"

"$dagger" run examples/hello.star >/dev/null # creates the store

printf '%-52s %12s %12s\n' "benchmark" "measured" "goal"
printf '%-52s %9s ms %12s\n' "dagger check, 10 000-step flow (whole process)" "$(best 5 "$dagger" check "$tmp/linear10k.star")" "<= 50 ms"
printf '%-52s %9s ms %12s\n' "dagger run examples/hello.star (whole process)" "$(best 10 "$dagger" run examples/hello.star)" "<= 10 ms"
ms=$(best 1 "$dagger" run testdata/bench/foreach.star -p n=10000)
printf '%-52s %9s ms %12s\n' "foreach of 10 000 tasks + join, in process" "$ms" ""
printf '%-52s %9s µs %12s\n' "  per task" "$(awk "BEGIN { printf \"%.1f\", 1000 * $ms / 10003 }")" "<= 20 µs"
# The same foreach with a subprocess per task, of the dagger binary itself,
# and what starting that binary costs alone.
ms=$(best 3 "$dagger" run --executor process testdata/bench/foreach.star -p n=300)
printf '%-52s %9s ms %12s\n' "foreach of 300 tasks, --executor process: per task" "$(awk "BEGIN { printf \"%.1f\", $ms / 303 }")" "<= 2 ms"
printf '%-52s %9s ms %12s\n' "  dagger --help (whole process)" "$(best 10 "$dagger" --help)" ""
# What a task costs the process executor: the runner's work alone, then a
# whole run with a subprocess per task of the (larger) test binary; and the
# load of a 10 000-step flow.
printf '%-52s\n' "go test -bench (process executor, load):"
go test -run '^$' -bench 'ServeTask' -benchtime 300x ./exec | grep '^Benchmark' | sed 's/^/  /'
go test -run '^$' -bench 'ProcessForeach' -benchtime 1x ./cli | grep '^Benchmark' | sed 's/^/  /'
go test -run '^$' -bench 'Load' -benchtime 10x ./starlark | grep '^Benchmark' | sed 's/^/  /'

# Output: 200 tasks that print 1 000 lines each, to a file and to a
# terminal (script(1) gives the run one), against the same run quiet.
lines="$dagger run testdata/bench/lines.star --store $tmp/store"
quiet=$(best 5 sh -c "$lines -p quiet=true >$tmp/out")
loud=$(best 5 sh -c "$lines >$tmp/out")
printf '%-52s %9s µs %12s\n' "printing a line, to a file (200 000 lines)" "$(awk "BEGIN { printf \"%.2f\", ($loud - $quiet) / 200 }")" "<= 0.5 µs"
if command -v script >/dev/null; then
	quiet=$(best 5 script -qec "$lines -p quiet=true" /dev/null)
	loud=$(best 5 script -qec "$lines" /dev/null)
	printf '%-52s %9s µs %12s\n' "printing a line, to a terminal" "$(awk "BEGIN { printf \"%.2f\", ($loud - $quiet) / 200 }")" "<= 2 µs"
fi
if [ "${1:-}" != quick ]; then
	for n in 100000 1000000; do
		/usr/bin/time -f '%e %M' -o "$tmp/t" "$dagger" run testdata/bench/foreach.star -p n=$n >/dev/null
		read -r secs kib <"$tmp/t"
		printf '%-52s %9s µs %12s\n' "foreach of $n tasks, in process: per task" "$(awk "BEGIN { printf \"%.1f\", 1e6 * $secs / $n }")" "<= 20 µs"
		printf '%-52s %8s MiB %12s\n' "  driver peak RSS" "$((kib / 1024))" "<= 1024 MiB"
	done
	printf '%-52s\n' "one artifact stored and read back, less building it:"
	go test -run '^$' -bench 'Artifact/(512|1024)' -benchtime 1x -count 3 ./exec | grep '^Benchmark' | sed 's/^/  /'
	for mib in 512 1024; do
		t0=$(date +%s%N)
		dd if=/dev/zero of="$tmp/dd" bs=4M count=$((mib / 4)) conv=fsync status=none
		dd if="$tmp/dd" of=/dev/null bs=4M status=none
		t1=$(date +%s%N)
		rm -f "$tmp/dd"
		printf '%-52s %6s MB/s %12s\n' "  dd writing (fsync) and reading $mib MiB, same disk" "$(awk "BEGIN { printf \"%.0f\", 2 * $mib * 1.048576 / (($t1 - $t0) / 1e9) }")" ">= 80 % of it"
	done
	/usr/bin/time -f %M -o "$tmp/rss" "$dagger" run testdata/bench/big.star --store "$tmp/big" -p mib=1024 >/dev/null
	printf '%-52s %8s MiB %12s\n' "1 GiB artifact stored and read back: peak RSS" "$(($(cat "$tmp/rss") / 1024))" "<= 1536 MiB"
	rm -rf "$tmp/big"
	ms=$(best 1 "$dagger" run "$tmp/gib.star")
	printf '%-52s %6s MB/s %12s\n' "1 GiB of artifacts written and read back" "$(awk "BEGIN { printf \"%.0f\", 2 * 1073.741824 / ($ms / 1000) }")" ""
	t0=$(date +%s%N)
	dd if=/dev/zero of="$tmp/dd" bs=4M count=256 conv=fsync status=none
	dd if="$tmp/dd" of=/dev/null bs=4M status=none
	t1=$(date +%s%N)
	printf '%-52s %6s MB/s %12s\n' "  dd writing (fsync) and reading 1 GiB, same disk" "$(awk "BEGIN { printf \"%.0f\", 2 * 1073.741824 / (($t1 - $t0) / 1e9) }")" ">= 50 % of it"
fi

# Kubernetes, on the loopback test cluster (built on first use), and the
# runner image of dagger itself pushed to a registry on loopback.
if [ "${1:-}" != quick ]; then
	printf '%-52s\n' "Kubernetes (go test -bench):"
	go test -run '^$' -bench 'Foreach' -benchtime 1x ./kubeexec | grep '^Benchmark' | sed 's/^/  /'
	go test -run '^$' -bench 'Push' -benchtime 5x ./runnerimage | grep '^Benchmark' | sed 's/^/  /'
fi
