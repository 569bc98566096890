"""Aggregates over datasets, holes and config differences: pure logic on hand-written rows and configs
(expected means worked out by hand), system identity on composed configs, and the CLI end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from rankbench.harness import aggregate, configdiff, holes, leaderboard
from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.experiment import system_hash

PROJECT = Path(__file__).resolve().parent.parent


def row(system: str, dataset: str, ndcg: str, key: str | None = None, **extra: str) -> dict[str, str]:
    """A leaderboard row as read back from the CSV (strings); ``key`` is its system_hash."""
    found = {"dataset": dataset, "system": system, "system_hash": key or "", "nDCG@10": ndcg}
    return found | {"config_hash": f"{system}-{dataset}", "timestamp": "2026-01-01T00:00:00+00:00"} | extra


# A: 0.5, 0.3, 0.9; B: 0.4, 0.6, 0.1; C (an older row: no system_hash) lacks d3.
ROWS = [
    row("A", "d1", "0.5", "aaaa11112222"),
    row("A", "d2", "0.3", "aaaa11112222"),
    row("A", "d3", "0.9", "aaaa11112222"),
    row("B", "d1", "0.4", "bbbb11112222"),
    row("B", "d2", "0.6", "bbbb11112222"),
    row("B", "d3", "0.1", "bbbb11112222"),
    row("C", "d1", "0.2"),
    row("C", "d2", "0.2"),
]


def test_mean_is_over_the_datasets_every_system_ran():
    result = aggregate.aggregate(ROWS, "nDCG@10")
    assert result.datasets == ["d1", "d2", "d3"] and result.shared == ["d1", "d2"]
    # by hand: A (0.5 + 0.3) / 2 = 0.4, B (0.4 + 0.6) / 2 = 0.5, C (0.2 + 0.2) / 2 = 0.2; d3 never averaged
    assert [(s.label, s.mean) for s in result.systems] == [
        ("B", pytest.approx(0.5)),
        ("A", pytest.approx(0.4)),
        ("C", pytest.approx(0.2)),
    ]
    assert result.notes == ["C has no nDCG@10 on d3: those datasets are not averaged"]
    header, body = aggregate.table(result)
    assert header == ["system", "d1", "d2", "d3†", "mean (2 datasets)"]
    assert body == [
        ["B", "0.4000", "0.6000", "0.1000", "0.5000"],
        ["A", "0.5000", "0.3000", "0.9000", "0.4000"],
        ["C", "0.2000", "0.2000", "–", "0.2000"],
    ]
    assert aggregate.footnotes(result)[0] == "nDCG@10; the mean is over d1, d2."


def test_systems_are_matched_by_system_hash_not_name():
    rows = [
        row("bm25", "d1", "0.3", "1111aaaa0000"),
        row("bm25", "d2", "0.5", "1111aaaa0000"),
        row("bm25", "d1", "0.1", "2222bbbb0000"),
        row("bm25", "d2", "0.2", "2222bbbb0000"),
    ]
    result = aggregate.aggregate(rows, "nDCG@10")
    assert [(s.label, s.mean) for s in result.systems] == [
        ("bm25 (1111aa)", pytest.approx(0.4)),
        ("bm25 (2222bb)", pytest.approx(0.15)),
    ]
    labelled = aggregate.aggregate(rows, "nDCG@10", {"1111aaaa0000": "bm25 (k1=0.9)", "2222bbbb0000": "bm25 (k1=2)"})
    assert [s.label for s in labelled.systems] == ["bm25 (k1=0.9)", "bm25 (k1=2)"]


def test_a_rerun_counts_once_the_latest_and_a_missing_value_is_a_missing_dataset():
    rows = [
        row("A", "d1", "0.1", "aaaa", config_hash="old", timestamp="2026-01-01T00:00:00+00:00"),
        row("A", "d1", "0.7", "aaaa", config_hash="new", timestamp="2026-01-02T00:00:00+00:00"),
        row("A", "d2", "0.3", "aaaa"),
        row("B", "d1", "0.5", "bbbb"),
        row("B", "d2", "", "bbbb"),  # a row from before this measure was recorded
    ]
    result = aggregate.aggregate(rows, "nDCG@10")
    assert result.shared == ["d1"]
    assert {s.label: s.mean for s in result.systems} == {"A": pytest.approx(0.7), "B": pytest.approx(0.5)}
    assert "A on d1: the latest run (new) counts, not old" in result.notes
    assert "B has no nDCG@10 on d2: those datasets are not averaged" in result.notes


def test_no_shared_dataset_gives_no_mean_and_says_so():
    result = aggregate.aggregate([row("A", "d1", "0.5", "a"), row("B", "d2", "0.4", "b")], "nDCG@10")
    assert result.shared == [] and all(s.mean is None for s in result.systems)
    assert "no dataset has a nDCG@10 for every system: no mean is given" in result.notes
    assert aggregate.table(result)[1][0][-1] == ""


def test_no_rows_or_no_values_is_a_clear_error():
    with pytest.raises(aggregate.AggregateError, match="no leaderboard rows"):
        aggregate.aggregate([], "nDCG@10")
    with pytest.raises(aggregate.AggregateError, match="no run has a value for 'R@100'"):
        aggregate.aggregate(ROWS, "R@100")


def test_latex_table_escapes_what_latex_treats_specially():
    text = leaderboard.to_latex(["system", "d3†", "nDCG@10"], [["bm25_multifield", "–", "50%"]])
    assert text == (
        "\\begin{tabular}{lrl}\n\\toprule\nsystem & d3$^\\dagger$ & nDCG@10 \\\\\n\\midrule\n"
        "bm25\\_multifield & -- & 50\\% \\\\\n\\bottomrule\n\\end{tabular}\n"
    )


def test_holes_are_one_minus_judged_at_10():
    rows = [row("A", "d1", "0.5", **{"Judged@10": "0.7500"}), row("B", "d1", "0.4")]
    header, body = holes.holes(rows, {id(rows[0]): "A (k1=2)"})
    assert header == ["dataset", "system", "Judged@10", "holes@10"]
    assert body == [["d1", "A (k1=2)", "0.7500", "0.2500"]]  # B has no Judged@10: not shown


def test_judged_at_10_is_a_default_measure(make_cfg):
    for dataset in ("scifact", "nfcorpus", "dl19", "local"):
        assert "Judged@10" in make_cfg(f"dataset={dataset}").measures


# Config differences


BM25 = {"_target_": "rankbench.retrievers.bm25.BM25", "name": "bm25", "k1": 0.9, "remove_query": True, "threads": 2}


def test_differences_name_the_differing_keys_and_skip_runtime_ones():
    configs = {
        "a": {"retriever": BM25, "measures": ["nDCG@10", "AP"], "runs_dir": "/x", "max_queries": None},
        "b": {"retriever": BM25 | {"remove_query": False, "threads": 8}, "measures": ["nDCG@10"], "runs_dir": "/y"},
    }
    assert configdiff.differences(configs) == {
        "a": ["max_queries=null", "measures=[nDCG@10,AP]", "retriever.remove_query=true"],
        "b": ["max_queries=unset", "measures=[nDCG@10]", "retriever.remove_query=false"],
    }
    assert configdiff.differences({"a": configs["a"], "c": configs["a"] | {"cache_dir": "/z"}}) == {"a": [], "c": []}


def test_flatten_gives_dotted_keys_with_lists_as_leaves():
    assert configdiff.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_a_config_whose_class_is_gone_still_compares():
    gone = {"_target_": "rankbench.retrievers.gone.Gone", "k": 1, "threads": 1}
    assert configdiff.differences({"a": {"retriever": gone}, "b": {"retriever": gone | {"k": 2}}}) == {
        "a": ["retriever.k=1"],
        "b": ["retriever.k=2"],
    }


def test_a_bad_saved_config_names_its_file(tmp_path: Path):
    (tmp_path / "config.yaml").write_text("- a list\n")
    with pytest.raises(DataError, match=r"config\.yaml: expected a mapping"):
        configdiff.load_config(tmp_path / "config.yaml")
    assert configdiff.load_config(tmp_path / "missing.yaml") is None


def test_system_hash_ignores_the_dataset_but_not_the_system(make_cfg):
    scifact = system_hash(make_cfg("dataset=scifact"))
    assert system_hash(make_cfg("dataset=arguana")) == scifact  # remove_query counts as ${dataset.remove_query}
    assert system_hash(make_cfg("dataset=scifact", "retriever.threads=8")) == scifact  # runtime only
    assert system_hash(make_cfg("dataset=scifact", "retriever.remove_query=true")) != scifact
    assert system_hash(make_cfg("dataset=scifact", "retriever.k1=1.2")) != scifact
    assert system_hash(make_cfg("retriever=bm25_multifield")) != scifact


def test_beir_overlay_sweeps_every_beir_test_set():
    swept = yaml.safe_load((PROJECT / "conf/experiment/beir.yaml").read_text())["hydra"]["sweeper"]["params"]
    beir_tests = set()
    for path in (PROJECT / "conf/dataset").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        if "/dataset_base/beir@_here_" in config.get("defaults", []) and config.get("split", "test") == "test":
            beir_tests.add(path.stem)
    assert set(swept["dataset"].split(",")) == beir_tests
    assert "scifact" in beir_tests and "scifact-train" not in beir_tests


# The CLI


def saved_run(runs: Path, make_cfg, dataset: str, ndcg: float, judged: float, *overrides: str) -> None:
    """A run folder with the config.yaml a run of these overrides saves, and its leaderboard row."""
    cfg = make_cfg(f"dataset={dataset}", *overrides)
    name, key = "bm25", system_hash(cfg)
    folder = runs / dataset / name / f"{dataset[:4]}{key}"[:12]
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    found = {"timestamp": "2026-01-01T00:00:00+00:00", "dataset": dataset, "retriever": name, "reranker": "none"}
    found |= {"system": name, "system_hash": key, "config_hash": folder.name, "num_queries": "10"}
    found |= {"nDCG@10": f"{ndcg:.4f}", "Judged@10": f"{judged:.4f}", "retrieve_s": "1.0", "run_path": str(folder)}
    leaderboard.append(runs / "leaderboard.csv", found)


@pytest.fixture
def board(tmp_path: Path, make_cfg) -> Path:
    """bm25 with its dataset's remove_query (scifact false, arguana true) on both, and with remove_query=true
    on scifact only."""
    runs = tmp_path / "board"
    saved_run(runs, make_cfg, "scifact", 0.6, 0.9)
    saved_run(runs, make_cfg, "arguana", 0.4, 0.5)
    saved_run(runs, make_cfg, "scifact", 0.5, 0.8, "retriever.remove_query=true")
    return runs


def test_cli_aggregate_table_with_config_differences(board: Path, capsys):
    assert leaderboard.main(["--runs", str(board), "--aggregate"]) == 0
    out = capsys.readouterr().out
    # scifact is the only dataset both systems ran: the means are their scifact values
    assert "| system | arguana† | scifact | mean (1 dataset) |" in out
    assert "| bm25 (retriever.remove_query=false) | 0.4000 | 0.6000 | 0.6000 |" in out
    assert "| bm25 (retriever.remove_query=true) | – | 0.5000 | 0.5000 |" in out
    assert "bm25 (retriever.remove_query=true) has no nDCG@10 on arguana: those datasets are not averaged" in out

    assert leaderboard.main(["--runs", str(board), "--aggregate", "--format", "latex"]) == 0
    assert "bm25 (retriever.remove\\_query=true) & -- & 0.5000 & 0.5000 \\\\" in capsys.readouterr().out
    assert leaderboard.main(["--runs", str(board), "--aggregate", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "system,arguana†,scifact,mean (1 dataset)" and "not averaged" in err

    assert leaderboard.main(["--runs", str(board), "--aggregate", "--dataset", "scifact"]) == 2
    assert "--aggregate compares datasets" in capsys.readouterr().err


def test_cli_table_shows_what_differs_between_same_named_runs(board: Path, capsys):
    assert leaderboard.main(["--runs", str(board), "--dataset", "scifact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| dataset | system | config_hash | differs | queries |")
    differs = [line.split(" | ")[3] for line in lines[2:]]
    assert differs == ["retriever.remove_query=false", "retriever.remove_query=true"]


def test_report_has_aggregate_and_holes_sections(board: Path, tmp_path: Path, capsys):
    pytest.importorskip("matplotlib")
    report = tmp_path / "report.html"
    assert leaderboard.main(["--runs", str(board), "--report", str(report)]) == 0
    page = report.read_text()
    assert "<h2>Mean nDCG@10 over datasets</h2>" in page and "Holes@10 = 1 − Judged@10" in page
    cells = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    assert ("scifact", "bm25 (retriever.remove_query=true)", "0.8000", "0.2000") in cells
    assert ("arguana", "bm25", "0.5000", "0.5000") in cells


def test_two_real_runs_record_their_system_and_what_differs(make_cfg, tiny_beir: Path, tmp_path: Path, capsys):
    from rankbench.harness.experiment import run_experiment

    configs = [make_cfg(f"dataset.path={tiny_beir}", *extra) for extra in ([], ["retriever.k1=1.5"])]
    rows = [run_experiment(cfg).row for cfg in configs]
    assert [r["system_hash"] for r in rows] == [system_hash(cfg) for cfg in configs]
    assert leaderboard.main(["--runs", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split(" | ")[3] for line in lines[2:]) == ["retriever.k1=0.9", "retriever.k1=1.5"]


def test_the_api_aggregate_is_the_leaderboards(tmp_path: Path, capsys):
    """rb.aggregate on real BM25 runs, cross-checked with `harness.leaderboard --aggregate` on the rows it wrote."""
    import rankbench as rb
    from tests.conftest import SHARED_DATA

    runs = tmp_path / "runs"
    systems = ["retriever=bm25", "retriever=bm25 retriever.k1=0.5"]
    table = rb.aggregate(
        systems, ["scifact", "scifact-train"], names=["bm25", "bm25 k1=0.5"], record=True, max_queries=4,
        runs_dir=runs, data_root=SHARED_DATA,
    )  # fmt: skip
    assert table.columns.tolist() == ["scifact", "scifact-train", "mean"]
    assert table["mean"].tolist() == pytest.approx(table[["scifact", "scifact-train"]].mean(axis=1).tolist())
    assert table["mean"].is_monotonic_decreasing and table.loc["bm25", "scifact"] != table.loc["bm25 k1=0.5", "scifact"]

    assert leaderboard.main(["--runs", str(runs), "--aggregate", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "system,scifact,scifact-train,mean (2 datasets)"
    from_cli = sorted(tuple(line.split(",")[1:]) for line in lines[1:])
    from_api = sorted(tuple(f"{v:.4f}" for v in row) for row in table.itertuples(index=False))
    assert from_cli == from_api

    with pytest.raises(ConfigError, match="measure 'P@7' is not measured on dataset scifact"):
        rb.aggregate(systems[:1], ["scifact"], measure="P@7", max_queries=4, runs_dir=runs, data_root=SHARED_DATA)
