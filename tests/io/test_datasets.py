"""Evaluation dataset and prediction readers: small fixtures written here, and the real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odqa.errors import InputError
from odqa.io.datasets import (
    EvalQuestion,
    detect_dataset_format,
    load_dataset,
    match_predictions,
    read_predictions,
)


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


# --- small fixtures -------------------------------------------------------------------------

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Rivers",
            "paragraphs": [
                {
                    "context": "The Seine flows through Paris.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Which river flows through Paris?",
                            "answers": [
                                {"text": "The Seine", "answer_start": 0},
                                {"text": "Seine", "answer_start": 4},
                                {"text": "Seine", "answer_start": 4},
                            ],
                        },
                        {
                            "id": "q2",
                            "question": "Unanswerable?",
                            "answers": [],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        }
    ],
}


def test_squad_json(tmp_path):
    path = write(tmp_path / "dev.json", json.dumps(SQUAD))
    data = load_dataset(path)
    assert data.format == "squad"
    assert not data.regex_answers
    assert data.questions == [
        EvalQuestion("q1", "Which river flows through Paris?", ("The Seine", "Seine"))
    ]


def test_squad_json_errors(tmp_path):
    with pytest.raises(InputError, match=r"dev\.json:2: invalid JSON"):
        load_dataset(write(tmp_path / "dev.json", '{"data": [\n,]}'))
    broken = json.loads(json.dumps(SQUAD))
    del broken["data"][0]["paragraphs"][0]["qas"][0]["question"]
    with pytest.raises(InputError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: missing"):
        load_dataset(write(tmp_path / "b.json", json.dumps(broken)))
    with pytest.raises(InputError, match="not a SQuAD file"):
        load_dataset(write(tmp_path / "c.json", "[1, 2]"))


def test_jsonl_answer_and_answers(tmp_path):
    path = write(
        tmp_path / "qa.jsonl",
        '{"question": "Capital of France?", "answer": ["Paris", "Paris"]}\n'
        "\n"
        '{"id": "x7", "question": "Largest planet?", "answers": "Jupiter"}\n'
        '{"question": "Who?", "answers": [{"text": "Curie"}]}\n',
    )
    data = load_dataset(path)
    assert data.format == "jsonl"
    assert [(q.id, q.question, q.answers) for q in data.questions] == [
        ("1", "Capital of France?", ("Paris",)),
        ("x7", "Largest planet?", ("Jupiter",)),
        ("4", "Who?", ("Curie",)),
    ]
    assert len(load_dataset(path, limit=2)) == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "each line must be a JSON object"),
        ('{"answer": ["x"]}', "missing 'question'"),
        ('{"question": "q"}', "missing 'answer' or 'answers'"),
        ('{"question": "q", "answer": []}', "non-empty list"),
        ('{"question": "q", "answer": [3]}', "is not a string"),
    ],
)
def test_jsonl_bad_lines_name_file_and_line(tmp_path, line, reason):
    path = write(tmp_path / "qa.jsonl", '{"question": "ok", "answer": "y"}\n' + line + "\n")
    with pytest.raises(InputError, match=reason) as info:
        load_dataset(path)
    assert info.value.line == 2
    assert info.value.path == path


def test_dpr_tsv_crlf_and_csv_quoting(tmp_path):
    text = (
        "who wrote hamlet\t['William Shakespeare']\n"
        'genre of the book\t"[""Children \'s novel"", \'Graphic Novel\']"\n'
        'a quoted answer\t[\'""flawed democracy""\']\n'
    )
    for newline in ("\n", "\r\n"):
        data = load_dataset(write(tmp_path / f"topics{len(newline)}.txt", text, newline))
        assert data.format == "dpr-tsv"
        assert [q.question for q in data.questions] == [
            "who wrote hamlet",
            "genre of the book",
            "a quoted answer",
        ]
        assert data.questions[1].answers == ("Children 's novel", "Graphic Novel")
        assert data.questions[2].answers == ('"flawed democracy"',)
        assert [q.id for q in data.questions] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("only a question", "expected 2 tab-separated fields"),
        ("q\t['unclosed", "not a Python list literal"),
        ("q\t{'a': 1}", "list of strings"),
        ("q\t[1, 2]", "list of strings"),
        ("q\t__import__('os')", "not a Python list literal"),
    ],
)
def test_dpr_tsv_bad_lines(tmp_path, line, reason):
    path = write(tmp_path / "t.txt", "fine\t['x']\r\n" + line + "\r\n", "\n")
    with pytest.raises(InputError, match=reason) as info:
        load_dataset(path)
    assert info.value.line == 2


def test_curated_regex_detection_and_override(tmp_path):
    lines = '{"question": "How tall?", "answer": ["20,?320\\\\s*f(ee|oo)t"]}\n'
    curated = write(tmp_path / "topics.curated.test.txt", lines)
    assert load_dataset(curated).regex_answers
    assert not load_dataset(curated, regex=False).regex_answers
    plain = write(tmp_path / "nq.jsonl", lines)
    assert not load_dataset(plain).regex_answers
    assert load_dataset(plain, regex=True).regex_answers
    bad = write(tmp_path / "curated_bad.jsonl", '{"question": "q", "answer": ["(open"]}\n')
    with pytest.raises(InputError, match=r"not a valid regular expression.*--no-regex"):
        load_dataset(bad)
    assert load_dataset(bad, regex=False).questions[0].answers == ("(open",)


def test_trec_tsv_regex_with_tab_inside(tmp_path):
    path = write(
        tmp_path / "large-test.tsv",
        "17\tfactoid\tWhat is measured in curies?\tradiation|Sv\\\t1 Sv\n"
        "18\tfactoid\tCapital of Italy?\tRome\n",
    )
    data = load_dataset(path)
    assert data.format == "trec-tsv"
    assert data.regex_answers
    assert data.questions[0] == EvalQuestion(
        "17", "What is measured in curies?", ("radiation|Sv\\\t1 Sv",)
    )
    assert data.questions[1].answers == ("Rome",)


def make_beir(folder: Path, qrels_name: str = "test.tsv") -> Path:
    write(folder / "corpus.jsonl", '{"_id": "d1", "title": "T", "text": "x"}\n')
    write(
        folder / "queries.jsonl",
        '{"_id": "q1", "text": "first?"}\n{"_id": "q2", "text": "second?"}\n'
        '{"_id": "q3", "text": "unjudged"}\n',
    )
    write(
        folder / "qrels" / qrels_name,
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td1\t0\n",
    )
    return folder


def test_beir_folder(tmp_path):
    data = load_dataset(make_beir(tmp_path / "scifact"))
    assert data.format == "beir"
    assert [(q.id, q.question) for q in data.questions] == [("q1", "first?"), ("q2", "second?")]
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}}
    assert load_dataset(make_beir(tmp_path / "other", "dev.tsv")).qrels["q1"] == {"d1": 1}


def test_beir_errors(tmp_path):
    folder = make_beir(tmp_path / "b")
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with pytest.raises(InputError, match=r"test\.tsv:2: relevance 'yes'"):
        load_dataset(folder)
    write(folder / "qrels" / "test.tsv", "q9\td1\t1\n")
    with pytest.raises(InputError, match=r"unknown query ids, e\.g\. 'q9'"):
        load_dataset(folder)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"queries\.jsonl is missing"):
        load_dataset(folder)
    with pytest.raises(InputError, match="no such file"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="empty"):
        load_dataset(write(tmp_path / "empty.txt", "\n\n"))


# --- predictions ----------------------------------------------------------------------------


def test_predictions_json_object_and_lines(tmp_path):
    questions = [
        EvalQuestion("a1", "Capital of France?", ("Paris",)),
        EvalQuestion("a2", "Largest planet?", ("Jupiter",)),
        EvalQuestion("a3", "Unanswered?", ("x",)),
    ]
    mapping = write(tmp_path / "p.json", json.dumps({"a1": "Paris", "Largest planet?": "Saturn"}))
    answers, unmatched = match_predictions(questions, read_predictions(mapping))
    assert answers == ["Paris", "Saturn", None]
    assert unmatched == 0

    lines = write(
        tmp_path / "p.jsonl",
        '{"id": "a2", "prediction": "Jupiter"}\n'
        '{"question": "Capital of France?", "answer": ["Lyon", "Paris"]}\n'
        '{"question_id": "zz", "question": "Other?", "mode": "extractive", '
        '"answers": [{"rank": 1, "text": "Mars"}]}\n',
    )
    answers, unmatched = match_predictions(questions, read_predictions(lines))
    assert answers == ["Lyon", "Jupiter", None]
    assert unmatched == 1


def test_predictions_errors(tmp_path):
    with pytest.raises(InputError, match=r"p\.jsonl:1: needs 'prediction'"):
        read_predictions(write(tmp_path / "p.jsonl", '{"id": "1", "score": 3}\n'))
    with pytest.raises(InputError, match=r"q\.jsonl:2: needs 'id' or 'question'"):
        read_predictions(write(tmp_path / "q.jsonl", '{"id": 1, "answer": "x"}\n{"answer": "y"}\n'))
    with pytest.raises(InputError, match="prediction for 'a' is not a string"):
        read_predictions(write(tmp_path / "r.json", '{"a": 3}'))
    with pytest.raises(InputError, match="no such predictions file"):
        read_predictions(tmp_path / "missing.json")


# --- real files -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_squad_dev(squad_dev):
    data = load_dataset(squad_dev)
    assert data.format == "squad"
    assert len(data) == 10570
    assert len({q.id for q in data.questions}) == len(data)
    assert all(q.answers for q in data.questions)


@pytest.mark.slow
def test_real_squad_open_matches_squad_dev(shared_data, squad_dev):
    squad = load_dataset(squad_dev).questions
    open_ = load_dataset(shared_data / "squad-open" / "topics.dpr.squad.test.txt")
    assert open_.format == "jsonl"
    assert [q.question for q in open_.questions] == [q.question for q in squad]
    assert [set(q.answers) for q in open_.questions] == [set(q.answers) for q in squad]


def test_real_nq_formats_agree(shared_data):
    folder = shared_data / "nq-open"
    jsonl = load_dataset(folder / "NQ-open.dev.jsonl")
    tsv = load_dataset(folder / "topics.nq.test.txt")
    dpr = load_dataset(folder / "topics.dpr.nq.test.txt")
    assert (jsonl.format, tsv.format, dpr.format) == ("jsonl", "dpr-tsv", "dpr-tsv")
    assert len(jsonl) == len(tsv) == len(dpr) == 3610
    assert {q.question for q in tsv.questions} == {q.question for q in jsonl.questions}
    # Once NBSPs are folded, the TSV answers equal the JSON lines' (doubled quotes undone).
    gold = {q.question: {a.replace("\xa0", " ") for a in q.answers} for q in jsonl.questions}
    same = sum(
        gold[q.question] == {a.replace("\xa0", " ") for a in q.answers} for q in tsv.questions
    )
    assert same == len(tsv)
    assert len(load_dataset(folder / "topics.dpr.nq.dev.txt")) == 8757
    for name in ("NQ-open.efficientqa.dev.1.1.jsonl", "NQ-open.efficientqa.test.1.1.jsonl"):
        assert all(q.answers for q in load_dataset(folder / name).questions)


def test_real_curated_trec(shared_data):
    folder = shared_data / "curatedtrec"
    dpr = load_dataset(folder / "topics.dpr.curated.test.txt")
    assert dpr.regex_answers and len(dpr) == 694
    upstream = load_dataset(folder / "brmson-large2180" / "large2180-test.tsv")
    assert upstream.format == "trec-tsv" and upstream.regex_answers
    assert [q.question for q in upstream.questions] == [q.question for q in dpr.questions]
    train = load_dataset(folder / "brmson-large2180" / "large2180-train.tsv")
    assert len(train) == 1479
    assert any("\t" in q.answers[0] for q in train.questions)


def test_detect_format_on_real_files(shared_data):
    assert detect_dataset_format(shared_data / "nq-open" / "topics.dpr.nq.test.txt") == "dpr-tsv"
    curated = shared_data / "curatedtrec" / "topics.dpr.curated.test.txt"
    assert detect_dataset_format(curated) == "jsonl"


def test_dataset_files_are_read_through_the_line_reader(tmp_path):
    import gzip

    trec = tmp_path / "curated.tsv.gz"
    trec.write_bytes(gzip.compress(b"1\tfactoid\twho wrote hamlet\tShakespeare\n"))
    assert [q.question for q in load_dataset(trec).questions] == ["who wrote hamlet"]
    broken = tmp_path / "topics.txt"
    broken.write_bytes(b"q1\t['a']\nq2\t['\xff']\n")
    with pytest.raises(InputError) as info:
        load_dataset(broken)
    assert info.value.line == 2 and "invalid UTF-8" in info.value.reason
