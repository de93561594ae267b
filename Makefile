# Developer tasks. The two commands the README starts with are `bash .ci/demo` and
# `bash .ci/test`; these targets wrap them and add the rest.
PY := .venv/bin/python
BENCH_JSON := .benchmarks/latest.json

.PHONY: dev test test-pure lint bench throughput wheel-test demo clean

dev:            ## editable install with the compiled core and every dev tool
	bash .ci/venv

test:           ## the whole suite: compiled core, then pure mode
	bash .ci/test

test-pure:      ## the suite on the pure-Python twins only
	SMTPX_NO_EXTENSIONS=1 $(PY) -m pytest

lint:           ## ruff, cython-lint, mypy --strict
	bash .ci/lint

bench:          ## the hot-path benchmarks, both twins beside the stdlib; prints the README table
	@mkdir -p .benchmarks
	SMTPX_REQUIRE_EXTENSIONS=1 $(PY) -m pytest benchmarks --benchmark-enable \
		--benchmark-json=$(BENCH_JSON) -q
	$(PY) benchmarks/report.py $(BENCH_JSON)

throughput:     ## end-to-end msgs/s beside smtplib, smtp-source, aiosmtplib (C sink)
	$(PY) benchmarks/throughput.py --repeat 3

wheel-test:     ## build a wheel, install it in a fresh venv, test it from outside the tree
	bash .ci/wheel-test

demo:
	bash .ci/demo

clean:
	rm -rf build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .benchmarks
	find src -name '*.so' -delete -o -name '*.pyd' -delete
	find src/smtpx/_hot -name '*.c' -delete -o -name '*.html' -delete
