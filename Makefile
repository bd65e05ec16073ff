# trigger-edge -- top-level make targets. Other parts of the project add theirs.
PYTHON ?= .venv/bin/python

.PHONY: demo test model bench deploy-test deploy-test-fast deploy-deps deploy-bundle

# README command 1: the shipped model on the example recordings.
demo:
	bash scripts/demo.sh

# README command 2: install everything and run the tests (what CI runs).
test:
	bash .ci/run

# Train "activate" with edge-word (the shipped settings; about an hour on 2 cores).
model:
	PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/make_activate_model.sh

# CPU / latency / memory of the runner next to pymicro-wakeword and pyopen-wakeword.
bench:
	.venv/bin/edge-bench

# All deploy/ checks, including the real install of deploy/install.sh into a
# temporary prefix (slow: builds a venv from PyPI or the pip cache).
deploy-test:
	$(PYTHON) -m pytest tests/test_deploy.py -v -rs

# Only the lint/validation checks (seconds).
deploy-test-fast:
	$(PYTHON) -m pytest tests/test_deploy.py -v -rs -m "not slow"

# The tools deploy-test uses (Debian/Ubuntu, as root).
deploy-deps:
	apt-get install -y --no-install-recommends shellcheck systemd cloud-init \
		portaudio19-dev python3-venv python3-dev gcc
	$(PYTHON) -m pip install ansible-core pytest pytest-timeout

# dist/trigger-edge/: a wheel + deploy/, to copy to a Pi's boot partition
# (cloud-init first boot) or anywhere, then run deploy/install.sh from it.
deploy-bundle:
	rm -rf dist/trigger-edge
	mkdir -p dist/trigger-edge
	$(PYTHON) -m pip wheel --no-deps --no-build-isolation -w dist/trigger-edge . \
		|| $(PYTHON) -m pip wheel --no-deps -w dist/trigger-edge .
	cp -r deploy dist/trigger-edge/deploy
	@echo "dist/trigger-edge ready: copy it to the boot partition as trigger-edge/"
