# syncbus recipes; `just` lists them. Each one calls ./dev, which needs only Python 3.11+.

default:
    @just --list

# Run the main job: syncbus demo on the SAF-T sample, on the embedded stack
demo *ARGS:
    ./dev demo {{ARGS}}

# Run the whole test suite (what CI runs)
test *ARGS:
    ./dev test {{ARGS}}

# ruff check, ruff format --check, mypy --strict
lint:
    ./dev lint

# Start the embedded stack until Ctrl-C
dev-stack:
    ./dev syncbus dev

# Run the benchmarks under bench/
bench:
    ./dev bench
