#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/, replays fuzz/regressions/,
# then fuzzes each target for SECONDS on a scratch copy of its seed corpus
# in fuzz/out/<target>/ (so new inputs are never committed).
#
# Usage: fuzz/run.sh [SECONDS]            (default 60; 0 = build and replay
#                                          the regressions only)
#   FUZZ_TARGETS="sasl proxy" fuzz/run.sh 10   runs a subset
#   CC=clang-14 fuzz/run.sh                    picks the compiler
# Exit status: 0 when every regression replays cleanly and no target
# crashed; 1 otherwise (each crashing input's path is printed).
set -u

secs=${1:-60}
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

all="smtp_command smtp_data sasl proxy addr config control httpreq"
targets=${FUZZ_TARGETS:-$all}
cc=${CC:-clang}
bin=build-fuzz
out=fuzz/out
srcs="base/util base/addr base/config proto/smtp_parse proto/smtp_data proto/sasl proto/proxy admin/ctlreq admin/httpreq admin/selfserve"
cflags="-std=c11 -D_GNU_SOURCE -I src -I fuzz -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all"
libs="-linih -lcrypto -ljansson -lpthread"

# A smaller quarantine keeps each fuzzer near 300 MB on a shared machine.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=64}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Inputs longer than this are not tried (the parsers' own limits are far
# below, except the DATA stream which needs lines over 1000 octets).
max_len() {
    case "$1" in
        smtp_command) echo 1024 ;;
        smtp_data)    echo 4096 ;;
        sasl)         echo 4096 ;;
        proxy)        echo 1200 ;;
        addr)         echo 256 ;;
        config)       echo 4096 ;;
        control)      echo 4096 ;;
        httpreq)      echo 8192 ;;
        *)            echo 4096 ;;
    esac
}

# ---- build ------------------------------------------------------------------
command -v "$cc" >/dev/null 2>&1 || { echo "fuzz: $cc not found (make fuzz installs clang)" >&2; exit 2; }
mkdir -p "$bin/obj" "$out/artifacts" "$out/logs"
t0=$(date +%s)
echo "fuzz: building into $bin/ with $cc"
for s in $srcs; do
    # Project code: instrumented for coverage and the sanitizers, no main.
    rm -f "$bin/obj/${s##*/}.o"
    $cc $cflags -fsanitize=fuzzer-no-link,address,undefined -c "src/$s.c" -o "$bin/obj/${s##*/}.o" &
done
wait
for s in $srcs; do
    [ -f "$bin/obj/${s##*/}.o" ] || { echo "fuzz: compiling src/$s.c failed" >&2; exit 2; }
done
objs=""
for s in $srcs; do objs="$objs $bin/obj/${s##*/}.o"; done
for t in $targets; do
    [ -f "fuzz/fuzz_$t.c" ] || { echo "fuzz: no target fuzz/fuzz_$t.c" >&2; exit 2; }
    rm -f "$bin/fuzz_$t"
    $cc $cflags -fsanitize=fuzzer,address,undefined "fuzz/fuzz_$t.c" $objs $libs -o "$bin/fuzz_$t" &
done
wait
for t in $targets; do
    [ -x "$bin/fuzz_$t" ] || { echo "fuzz: linking $bin/fuzz_$t failed" >&2; exit 2; }
done
echo "fuzz: built $(echo $targets | wc -w) targets in $(( $(date +%s) - t0 ))s"

failed=0

# ---- regressions: every saved crash must now pass -------------------------
for f in fuzz/regressions/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    t=""
    for c in $all; do
        case "$name" in "$c"-*) [ ${#c} -gt ${#t} ] && t=$c ;; esac
    done
    if [ -z "$t" ]; then
        echo "fuzz: regression $f: name must start with a target name (<target>-<name>)" >&2
        failed=1
        continue
    fi
    case " $targets " in *" $t "*) ;; *) continue ;; esac
    log="$out/logs/regression-$name.log"
    if "./$bin/fuzz_$t" -timeout=10 -rss_limit_mb=2048 "$f" >"$log" 2>&1; then
        echo "fuzz: regression ok     $f"
    else
        echo "fuzz: REGRESSION FAILS  $f (target $t; log $log)"
        grep -E '^(SUMMARY|.*property failed|.*runtime error)' "$log" | head -3 | sed 's/^/    /'
        failed=1
    fi
done

# ---- fuzzing -------------------------------------------------------------
if [ "$secs" -eq 0 ]; then
    # libFuzzer reads -max_total_time=0 as "forever": 0 means no fuzzing here.
    [ "$failed" -ne 0 ] && { echo "fuzz: FAILED (a regression still fails)"; exit 1; }
    echo "fuzz: built and replayed the regressions; no fuzzing (SECONDS=0)"
    exit 0
fi
summary=""
for t in $targets; do
    corpus="$out/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$t" ]; then
        cp fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    log="$out/logs/$t.log"
    echo "fuzz: $t for ${secs}s (corpus $corpus, log $log)"
    "./$bin/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -artifact_prefix="$out/artifacts/$t-" \
        -print_final_stats=1 $dict "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        # A crash stops libFuzzer before "Done": take the last status line.
        runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    fi
    runs=${runs:-0}
    units=$(ls "$corpus" | wc -l)
    if [ "$rc" -eq 0 ]; then
        result="ok"
    else
        result="CRASH"
        failed=1
        art=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -n 1)
        echo "fuzz: $t CRASHED (exit $rc): input ${art:-"(none written; see $log)"}"
        grep -E '^(SUMMARY|.*property failed|.*runtime error|==[0-9]+==ERROR)' "$log" | head -4 | sed 's/^/    /'
        [ -n "$art" ] && echo "    replay: ./$bin/fuzz_$t $art"
    fi
    echo "fuzz: $t: $runs executions, $units corpus files, $result"
    summary="$summary$(printf '%-14s %12s %8s  %s' "$t" "$runs" "$units" "$result")
"
done

echo
printf '%-14s %12s %8s  %s\n' target executions corpus result
printf '%s' "$summary"
echo "fuzz: total $(( $(date +%s) - t0 ))s"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED (crashing inputs are in $out/artifacts/)"
    exit 1
fi
echo "fuzz: all targets clean"
