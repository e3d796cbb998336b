# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-other-kernels bench bench-gpu soak load venv clean postgres chromium

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m bot.demo

# The store's tests also run on PostgreSQL, on a throwaway server they start themselves; this
# installs the server programs (Debian package postgresql) when missing. `demo` needs none of it.
postgres:
	sh scripts/ensure-postgres.sh

# The web gallery's browser tests drive headless Chromium; this installs the Debian packages
# chromium and chromium-driver when missing.
chromium:
	sh scripts/ensure-chromium.sh

test: $(STAMP) postgres chromium
	$(PY) -m pytest -q

# The engine's tests once more on other CPU kernels than this machine picks (no AVX-512, oneDNN
# and MKL held to AVX2, one torch thread): float results differ between kernel sets, and the
# tests must assert what the features promise on any x86-64 CPU. `.ci/run` runs it after `test`.
test-other-kernels: $(STAMP)
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1 \
		$(PY) -m pytest -q tests/core

# Speed against naive loops doing the same work, two workers oversubscribing the cores against the
# default threads, the cost model's predictions against measured seconds, video
# coherence, then how the results look: class renders against photos, class-guided dreams, going deeper.
bench: $(STAMP)
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.threads
	$(PY) -m benchmarks.cost_check
	$(PY) -m benchmarks.video
	$(PY) -m benchmarks.zooms
	$(PY) -m benchmarks.renders --save bench-results/renders
	$(PY) -m benchmarks.target_dreams
	$(PY) -m benchmarks.deeper

# On a CUDA machine: the GPU figures (step ms at 1024, batched image-steps/s, whole dream), as JSON.
bench-gpu: $(STAMP)
	$(PY) -m benchmarks.gpu

clean:
	rm -rf $(VENV) demo-out out

# Many tiny jobs through two bot processes on one database, with workers and bots killed (SIGKILL;
# each bot kill lands while the bot holds a running and a queued job); prints the counts and the
# adoptions after each bot kill. Then the load test (make load). Reduced sizes run inside `make test`
# (tests/bot/test_soak.py on both databases, tests/bot/test_load.py).
# On PostgreSQL (a throwaway server): make soak SOAK_ARGS=--postgres
soak: $(STAMP)
	$(PY) -m tests.soak --jobs 1000 --worker-kills 100 --bot-kills 10 $(SOAK_ARGS)
	$(MAKE) load

# 200 users in 20 servers queue 1000 fast fake jobs through one real bot process (`dreambot run --web`
# on the fake Discord) while `!queue` and the web gallery are asked; prints event-loop lag, answer
# times and memory, and holds them to their targets (tests/soak/load.py). make load SOAK_ARGS=--postgres
load: $(STAMP)
	$(PY) -m tests.soak.load --users 200 --guilds 20 --jobs 1000 $(SOAK_ARGS)
