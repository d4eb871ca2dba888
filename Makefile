# fom-qbo: the two commands are `make demo` and `make test`; the rest are for developers.
SHELL := /bin/bash
CARGO ?= cargo
export PDFIUM_LIB_PATH ?= $(CURDIR)/vendor/pdfium

.PHONY: demo test pdfium redis moto browser build lint fmt examples memtest bench bench-queue bench-throughput bench-web bench-gemini heap-profile clean

## demo: install pdfium if missing, build, extract the example deposit offline and print its report
demo: pdfium build
	@RUST_LOG=warn ./target/release/fom-worker process examples/deposit.pdf examples/online-gifts.csv
	@echo
	@RUST_LOG=warn ./target/release/fom-worker report examples/deposit.pdf examples/online-gifts.csv

## test: install pdfium, moto and the browser (chromium, playwright-core), make sure Redis
## answers, run lints (the heap-profile feature too, so it cannot break unseen), check
## fom-core's dependencies and run every test
test: pdfium redis moto browser
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p fom-worker --all-targets --features heap-profile --locked -- -D warnings
	CARGO=$(CARGO) ./scripts/check-core-deps.sh
	CARGO=$(CARGO) ./scripts/cargo-test-summary.sh --workspace --locked

pdfium:
	./scripts/install-pdfium.sh

redis:
	./scripts/ensure-redis.sh

## moto: install moto_server (the S3 fake the S3 upload-store tests use) in target/tools/moto
moto:
	./scripts/ensure-moto.sh

## browser: Debian's chromium and playwright-core (tests/browser) for the browser tests
browser:
	./scripts/ensure-browser.sh

build:
	$(CARGO) build --release --locked -p fom-worker -p fom-web

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## examples: rewrite examples/ from crates/testkit/src/examples.rs, and the golden report
examples:
	$(CARGO) run -q -p fom-testkit --example make-examples -- examples
	$(CARGO) run -q -p fom-worker -- report examples/deposit.pdf examples/online-gifts.csv > examples/deposit-report.txt

## memtest: peak RSS and speed of the page pipeline, both paths, 5 and 200 pages
memtest: pdfium build
	@for args in "--pages 5" "--pages 200" "--pages 5 --force-render" "--pages 200 --force-render"; do \
	  echo "memtest $$args: $$(RUST_LOG=warn ./target/release/fom-worker memtest $$args --json)"; done

## bench: side by side with the old system's PDF handling (needs the external bench scripts,
## found through BENCH_DIR: docs/PERFORMANCE.md)
bench: pdfium build
	./scripts/bench-side-by-side.sh 200

## bench-queue: enqueue-to-start latency and budget respawn time against the local Redis
bench-queue: pdfium redis build
	python3 scripts/bench-queue.py 200

## bench-throughput: documents per hour per dyno on the Gemini path (local fake, 3 s answers),
## WORKER_PROCESSES=auto against one child
bench-throughput: pdfium redis
	$(CARGO) build --release --locked -p fom-worker -p fom-testkit --bin fom-worker --bin fake-gemini
	python3 scripts/bench-throughput.py 24 3000

## bench-web: fom-web's idle RSS, peak RSS under 20 concurrent 20 MB uploads, /health under wrk
bench-web:
	./scripts/bench-web.sh 20 20

## bench-gemini: peak RSS and pages/s of the Gemini path on 200 scanned pages (local fake, 300 ms per answer)
bench-gemini: pdfium
	./scripts/bench-gemini.sh 200 300

## heap-profile: dhat heap profile of a memtest run, written to dhat-heap.json
heap-profile: pdfium
	CARGO_TARGET_DIR=target/heap-profile $(CARGO) run --release -p fom-worker --features heap-profile -- memtest --pages 20 --force-render --json

clean:
	$(CARGO) clean
