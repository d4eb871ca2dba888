#!/usr/bin/env bash
# Side by side, in one run, on the same file: our page pipeline (fom-worker memtest --file) vs the
# old system's PDF handling, replayed by anchor_pdf_batches.py from the external bench scripts
# (BENCH_DIR; what they are: docs/PERFORMANCE.md, "Side by side with the old system"). Peak RSS
# from /usr/bin/time -v for both. Usage: scripts/bench-side-by-side.sh [PAGES] (default 200).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pages="${1:-200}"
bench="${BENCH_DIR:-$root/../shared/bench}"
worker="$root/target/release/fom-worker"
pdf="${TMPDIR:-/tmp}/scan$pages.pdf"

[[ -d "$bench" ]] || { echo "bench: $bench not found (set BENCH_DIR)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
python3 -c "import fitz, PyPDF2, numpy, PIL" 2>/dev/null || python3 -m pip install -q -r "$bench/requirements.txt"
[[ -x "$worker" ]] || { echo "bench: build first (make build)" >&2; exit 1; }

python3 "$bench/make_scan_pdf.py" --pages "$pages" --out "$pdf" >/dev/null

measure() { # label, command...
  local label="$1"; shift
  local log; log="$(mktemp)"
  /usr/bin/time -v "$@" >"$log.out" 2>"$log"
  local rss secs
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); printf "%.1f", $2/1024}' "$log")
  secs=$(awk '/Elapsed \(wall clock\)/ {n=split($NF,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; printf "%.2f", s}' "$log")
  printf '%-34s peak_rss_mb=%-8s seconds=%-7s pages_per_sec=%.2f\n' "$label" "$rss" "$secs" "$(awk -v p="$pages" -v s="$secs" 'BEGIN{print p/s}')"
  cat "$log.out" | sed 's/^/    /'
  rm -f "$log" "$log.out"
}

echo "file: $pdf ($(du -m "$pdf" | cut -f1) MB, $pages pages, 300 DPI)"
measure "fom-worker memtest (default)" "$worker" memtest --file "$pdf" --json
measure "fom-worker memtest --force-render" "$worker" memtest --file "$pdf" --force-render --json
measure "  ... --pdfium-only (pdfium renders)" "$worker" memtest --file "$pdf" --force-render --pdfium-only --json
measure "anchor_pdf_batches.py" python3 "$bench/anchor_pdf_batches.py" "$pdf"
