# The README's two commands: `make demo` and `make test`.
# Both set everything up first (virtualenv, pinned CPU torch, the package, Debian packages).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := espeak-ng fluidsynth fluid-soundfont-gm chromium chromium-driver
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test setup system-packages clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on disk. A looser pin pulls gigabytes of CUDA builds.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[web,distributed,dev]'
	touch $(STAMP)

# Debian packages the tasks use (speech, music audio, browser tests); installed when missing
# and when we can (root or passwordless sudo). Missing ones only disable what needs them.
system-packages:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "note: cannot install$$missing (not root); related features are skipped"; \
	  else echo "installing$$missing"; $$SUDO apt-get update -qq >/dev/null 2>&1; \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null 2>&1 \
	    || echo "note: apt-get could not install$$missing; related features are skipped"; fi; \
	fi

# The showcase: every batch file in examples/ (one per task) rendered into outputs/.
demo: setup system-packages
	@set -e; for f in examples/*.toml; do echo "== $$f"; $(BIN)/studio batch $$f --out outputs; done
	@echo; echo "Showcase written under $$(pwd)/outputs/:"; find outputs -type f ! -name '*.json' | sort | sed 's/^/  /'

test: setup system-packages
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/studio bench core
	$(BIN)/studio bench jobs

clean:
	rm -rf $(VENV) outputs build *.egg-info
