# The two commands of the README. Both set up what they need first (idempotent).
.PHONY: setup quickstart test build bench

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

quickstart: setup
	cargo run --quiet -- run experiments/quickstart.toml

test: setup
	cargo test --all-targets

# Criterion benches in release (a release build of all dependencies takes ~15 min on 2 cores).
bench: setup
	cargo bench
