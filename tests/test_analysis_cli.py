"""`python -m afp_lib analyse ...` and the analysis section of params.yaml."""
import json

import pytest

from afp_lib.analysis.cli import main
from afp_lib.analysis.config import AnalysisConfig, analysis_config


def test_every_profile_loads_into_the_dataclass():
    for profile in ("smoke", "mini", "paper"):
        cfg = analysis_config(profile)
        assert isinstance(cfg, AnalysisConfig) and cfg.tsne.perplexity > 0 and cfg.layer == 1
    assert analysis_config("smoke").n_pairs < analysis_config("paper").n_pairs
    with pytest.raises(KeyError, match="did you mean 'perplexity'"):
        analysis_config("smoke", {"tsne": {"perplexty": 5.0}})


def test_tables_command_writes_csv_md_tex(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [dict(model="m", task="xnli", language=l, shots=s, seed=1, metric="acc", value=50.0, n_items=5)
            for l in ("en", "zh") for s in (0, 5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["tables", str(path), "--out", str(tmp_path / "out"), "--tables", "1", "9"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "data_revisions.json", "table1.csv", "table1.md", "table1.tex", "table9.csv", "table9.md", "table9.tex"]
    revisions = json.loads((tmp_path / "out" / "data_revisions.json").read_text())  # which data the tables came from
    from afp_lib.paths import mirror_root
    if mirror_root() is not None:
        assert len(revisions["manifest_sha256"]) == 64 and revisions["datasets"]
    else:
        assert revisions["store"] is None and "not pinned" in revisions["note"]
    assert "| ours    | m " in (tmp_path / "out" / "table9.md").read_text()


def test_paper_and_trajectories_commands(tmp_path, capsys):
    assert main(["paper", "2"]) == 0
    assert "XGLM-7.5B + AFP" in capsys.readouterr().out
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "align": 1 - s / 10, "uniform": -s / 10}) for s in range(3)))
    assert main(["trajectories", f"AFP={log}", "--out", str(tmp_path / "fig3c")]) == 0
    assert (tmp_path / "fig3c.png").is_file() and (tmp_path / "fig3c.pdf").is_file()
    with pytest.raises(SystemExit):
        main(["trajectories", str(log), "--out", str(tmp_path / "x")])


def test_represent_command_on_tiny_saved_models(tmp_path, mirror, tiny_models, toy_tokenizer):
    for name in ("before", "after"):
        tiny_models["xglm"].save_pretrained(tmp_path / name)
        toy_tokenizer.save_pretrained(tmp_path / name)
    assert main(["represent", str(tmp_path / "before"), str(tmp_path / "after"), "--profile", "smoke",
                 "--out", str(tmp_path / "res"), "--fig", str(tmp_path / "tsne")]) == 0
    import pandas as pd
    report = pd.read_csv(tmp_path / "res" / "representations.csv")
    assert list(report.pair) == ["en-zh", "en-zh"] and (report.n == 32).all()
    assert report["align"].nunique() == 1  # the same weights saved twice give the same numbers
    assert (tmp_path / "tsne.png").is_file()
