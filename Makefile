# The two commands of the README. Both set up what they need first (idempotent).
.PHONY: setup quickstart test build bench parity-fixtures

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

quickstart: setup
	cargo run --quiet -- run experiments/quickstart.toml

# Benches run once each in test mode first, doc tests next, and the test suites last,
# so cargo test's summaries of real tests close the output.
test: setup
	cargo test --benches
	cargo test --doc
	cargo test --lib --bins --tests

# Criterion benches in release (a release build of all dependencies takes ~15 min on 2 cores).
bench: setup
	cargo bench

# Regenerate the transformers parity fixtures (needs a 2.5 GB PyTorch + transformers virtualenv, made once).
parity-fixtures:
	bash scripts/parity/regenerate.sh
