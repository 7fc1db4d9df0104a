# Two entry points for a fresh machine:
#   make demo   create .venv, install, index the bundled sample corpus, search and ask it
#   make test   create .venv, install, lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed first so pip never pulls a CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: install demo test bench clean reader-model phrase-model dense-model

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

# The recipe of the bundled reader (odqa/models/reader-minilm). Stage 1 reads 77,391 SQuAD train
# questions on their gold paragraphs for 3 epochs: all but the 8,208 with guessed answer offsets
# and a seeded 2,000 kept aside to choose settings on. Stage 2 continues from it on 30,000 of
# those questions, each read with one BM25-retrieved negative paragraph under shared
# normalisation. About 4 minutes on one data-centre GPU (READER_DEVICE=cuda, bf16), data
# preparation included; on 2 CPU cores about 10 hours (each `odqa train reader` command also
# takes --time-limit MINUTES and --resume, to split its run over several invocations).
SQUAD_DIR ?= ../shared/data/squad-v1.1
READER_DEVICE ?= auto
reader-model: install
	HF_HUB_OFFLINE=1 $(BIN)/odqa train reader $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out build/reader-stage1 --force --save delta --max-examples 77391 --epochs 3 \
		--lr 2e-4 --batch-size 64 --drop-offset-source first_occurrence_guess \
		--device $(READER_DEVICE)
	HF_HUB_OFFLINE=1 $(BIN)/odqa train reader $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out odqa/models/reader-minilm --force --save delta --init build/reader-stage1 \
		--max-examples 30000 --negatives 1 --epochs 1 --lr 5e-5 --batch-size 32 \
		--drop-offset-source first_occurrence_guess --device $(READER_DEVICE)

# The tuned dense pair (not shipped: two 90 MB encoders). Stage 1 fine-tunes both sides on all
# 87,599 SQuAD train questions with in-batch and BM25 hard negatives: about 6 minutes on one
# data-centre GPU (DENSE_DEVICE=cuda), many hours on 2 CPU cores. Stage 2 keeps that passage
# encoder and trains a question encoder for it against every training paragraph (query-side):
# about 16 minutes on 2 CPU cores. Index with
#   odqa index CORPUS --retrievers dense --encoder build/dense-tuned --query-encoder build/dense-query
DENSE_DEVICE ?= auto
dense-model: install
	HF_HUB_OFFLINE=1 $(BIN)/odqa train dense $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out build/dense-tuned --force --epochs 3 --batch-size 128 --lr 3e-5 \
		--device $(DENSE_DEVICE)
	HF_HUB_OFFLINE=1 $(BIN)/odqa train dense $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out build/dense-query --force --base build/dense-tuned \
		--passage-encoder build/dense-tuned --epochs 1 --batch-size 128 --lr 2e-5

# The recipe of the bundled phrase model (odqa/models/phrase-minilm): about 50 minutes on 2 CPU
# cores.
phrase-model: install
	HF_HUB_OFFLINE=1 $(BIN)/odqa train phrase $(SQUAD_DIR)/train-v1.1.reconstructed.json.gz \
		--out odqa/models/phrase-minilm --force --save delta --max-examples 32000 --epochs 1 \
		--lr 1e-4 --batch-size 32 --drop-offset-source first_occurrence_guess

clean:
	rm -rf $(VENV) indexes/sample
