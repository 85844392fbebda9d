# The README's commands. `make demo` separates the bundled example; `make test` runs the tests.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the tests need: ffmpeg (musdb's stem decoding), fluidsynth and a small GM soundfont,
# one voice of each singing engine of `septool synth` (festival's kal, festival's slt, flite), and
# headless Chromium with a font, which loads the listening report's page (tests/test_report.py).
TEST_PACKAGES = ffmpeg fluidsynth timgm6mb-soundfont festival festvox-kallpc16k festvox-us-slt-hts flite \
	chromium fonts-dejavu-core
# Every free voice of the voice bank (`septool synth --list-voices`) and the soundfonts of the recipe.
VOICE_PACKAGES = festvox-kallpc16k festvox-kdlpc16k festvox-itapc16k festvox-italp16k festvox-suopuhe-lj \
	festvox-suopuhe-mv festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph \
	festvox-hi-nsk festival-hi flite festvox-us-slt-hts festvox-ca-ona-hts festvox-ru
SOUNDFONT_PACKAGES = fluid-soundfont-gm musescore-general-soundfont avldrums.lv2-soundfont timgm6mb-soundfont \
	csound-soundfont

.PHONY: install demo test bench system-packages voices

install:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test]"

# apt-get only for what is missing, so a machine that has everything needs no network or root
define apt_install
	@missing=$$(for p in $(1); do dpkg -s "$$p" >/dev/null 2>&1 || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi
endef

system-packages:
	$(call apt_install,$(TEST_PACKAGES))

voices:
	$(call apt_install,$(TEST_PACKAGES) $(VOICE_PACKAGES) $(SOUNDFONT_PACKAGES))

demo: install
	septool separate examples/audio/demo.ogg -o separated

test: system-packages install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m pip install -q --no-deps openunmix
	$(PYTHON) benchmarks/separate_speed.py
