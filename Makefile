# Two entry points for a fresh machine:
#   make demo   create .venv, install, index the bundled sample corpus, search and ask it
#   make test   create .venv, install, lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed first so pip never pulls a CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: install demo test bench clean reader-model phrase-model

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/odqa index data/sample_corpus.jsonl --name sample --force
	$(BIN)/odqa search "Who received a patent for the telephone?" --index indexes/sample -k 3
	HF_HUB_OFFLINE=1 $(BIN)/odqa ask "Who received a patent for the telephone?" --index indexes/sample --top 3

test: install
	$(BIN)/ruff check odqa tests bench
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The recipe of the bundled reader (odqa/models/reader-minilm): about 2 hours on 2 CPU cores.
# Stage 1 reads 40,000 gold paragraphs; stage 2 continues from it on 4,000 new questions, each
# read with one BM25-retrieved negative paragraph under shared normalisation.
SQUAD_DIR ?= ../shared/data/squad-v1.1
reader-model: install
	HF_HUB_OFFLINE=1 $(BIN)/odqa train reader $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out build/reader-stage1 --force --save delta --max-examples 40000 --epochs 1 \
		--lr 1e-4 --batch-size 32 --drop-offset-source first_occurrence_guess
	HF_HUB_OFFLINE=1 $(BIN)/odqa train reader $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out odqa/models/reader-minilm --force --save delta --init build/reader-stage1 \
		--sample-start 40000 --max-examples 4000 --negatives 1 --epochs 1 --lr 5e-5 \
		--batch-size 16 --drop-offset-source first_occurrence_guess \
		--eval $(SQUAD_DIR)/dev-v1.1.json

# The recipe of the bundled phrase model (odqa/models/phrase-minilm): about 50 minutes on 2 CPU
# cores.
phrase-model: install
	HF_HUB_OFFLINE=1 $(BIN)/odqa train phrase $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out odqa/models/phrase-minilm --force --save delta --max-examples 32000 --epochs 1 \
		--lr 1e-4 --batch-size 32 --drop-offset-source first_occurrence_guess

clean:
	rm -rf $(VENV) indexes/sample
