"""The README stays a front page and every document's links lead somewhere: a reader who follows a link from
the README or docs/ finds the file, and the front page carries no lab-journal words (run letters, issue numbers)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
HISTORY = re.compile(r"\b(?:run [A-H]\b|runs [A-H]-[A-H]\b|issue \d+|throwaway)", re.IGNORECASE)


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move details into docs/"
    text = "\n".join(lines)
    assert "make repro" in text and "make test" in text  # the two commands CI and users rely on


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    missing = [target for target in LINK.findall(text)
               if "://" not in target and not (doc.parent / target).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_no_words_of_the_projects_history(doc):
    hits = [f"{doc.name}:{i}: {line.strip()[:80]}" for i, line in
            enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if HISTORY.search(line)]
    assert not hits, "run letters / issue numbers belong in commit messages, not in the documents:\n" + "\n".join(hits)


def _findings():
    import csv
    rows = csv.DictReader((ROOT / "results/mini/bilingual/findings.csv").open(encoding="utf-8"))
    return {r[""]: {k: float(v) if v not in ("", "nan") else None for k, v in r.items() if k} for r in rows}


def test_the_mini_findings_table_matches_the_committed_results():
    """Every number of docs/results-mini.md's findings table, as printed, from findings.csv (same rounding)."""
    f = _findings()
    text = (ROOT / "docs/results-mini.md").read_text(encoding="utf-8")
    text = text[text.index("## What the alignment does inside Gemma"):]   # the findings section only
    text = text[:text.index("\n## ")]
    rows = {line.split("|")[1].strip().split(" ")[0]: line for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().split(" ")[0] in f}
    assert set(rows) == set(f), f"rows {sorted(rows)} against findings.csv's {sorted(f)}"
    for method, line in rows.items():
        x = f[method]
        want = [x["dev retrieval"], x["dev retrieval lo"], x["dev retrieval hi"], x["dev align"], x["dev uniform"],
                x["retrieval"], x["retrieval lo"], x["retrieval hi"], x["uniform"], x["ppl en"], x["ppl zh"],
                x["answered en->zh (%)"]]
        cells = line.split("|")[2:-1]
        shown = [float(t) for cell in cells for t in re.findall(r"-?\d+(?:\.\d+)?", cell.split("±")[0]
                 if "[" not in cell else cell)]
        for value, printed in zip(want, shown):
            digits = len(str(printed).split(".")[1]) if "." in str(printed) and printed != int(printed) else 0
            assert abs(value - printed) <= 0.5 * 10 ** -max(digits, 0) + 1e-9 or round(value, 3) == printed, (
                method, value, printed)


def test_the_mini_findings_paragraph_says_what_the_intervals_say():
    """Each comparison the findings paragraph of docs/results-mini.md makes, checked against findings.csv."""
    f = _findings()
    above = lambda a, b, col: f[a][f"{col} lo"] > f[b][f"{col} hi"]  # noqa: E731  (disjoint 95% intervals)
    for other in ("BPre", "CIT", "vanilla"):
        assert above("AFP", other, "dev retrieval")
    assert 3.5 < f["AFP"]["dev retrieval"] / f["vanilla"]["dev retrieval"] < 4.5  # "four times"
    assert not above("MCL", "AFP", "dev retrieval") and not above("AFP", "MCL", "dev retrieval")  # overlap
    for other in ("CIT", "vanilla"):
        assert above("AFP", other, "retrieval")
    for where in ("dev uniform", "uniform"):
        assert f["AFP"][where] < f["vanilla"][where]
    assert f["AFP"]["dev align"] > f["vanilla"]["dev align"]  # ends a little above the vanilla model's
    for m in ("CIT", "AFP", "BPre"):
        assert f[m]["answered en->zh (%)"] >= 98 and f[m]["answers in zh (%)"] > 50
    for m in ("vanilla", "MCL"):
        assert f[m]["answered en->zh (%)"] == 20 and f[m]["answers in zh (%)"] < 1
    for lang in ("en", "zh"):
        assert 1.4 < f["AFP"][f"ppl {lang}"] / f["vanilla"][f"ppl {lang}"] < 1.6  # "about 1.5 times"
        assert f["BPre"][f"ppl {lang}"] < f["vanilla"][f"ppl {lang}"]
    assert round(f["MCL"]["ppl zh"] / f["vanilla"]["ppl zh"], 1) == 1.8
    assert f["MCL"]["ppl en"] / f["vanilla"]["ppl en"] < 1.1


# docs/results-mini.md's sections on the sweeps -> the committed tables whose EN-ZH averages they print
SWEEPS = {"## Which layer MCL aligns": (["paired_vs_vanilla", "paired_vs_layer1"], "mcl_layer", ["layer_intervals"]),
          "## Cross-lingual against monolingual": (["paired_vs_vanilla", "paired_vs_p_src1"], "p_src", ["p_src_intervals"]),
          "## What each part adds": (["table8_paired"], "ablation", []),
          "## Pooling and the weight of CIT": (["paired_vs_vanilla", "paired_vs_default_pooling", "paired_vs_default_alpha"],
                                              "appendix", ["pooling_intervals", "alpha_intervals"]),
          "## Five languages": (["paired_vs_vanilla", "paired_pairwise_vs_bridge"], "multilingual", []),
          "## Every language": (["paired_vs_vanilla"], "all_languages", [])}


@pytest.mark.parametrize("heading", SWEEPS)
def test_the_mini_sweep_sections_print_the_committed_averages(heading):
    """Each paired average (and each sweep point's interval) a section of docs/results-mini.md cites is the one
    its notebook last wrote, as printed there: a rerun that moves a number fails until the page follows."""
    import csv
    from decimal import ROUND_HALF_UP, Decimal
    text = (ROOT / "docs/results-mini.md").read_text(encoding="utf-8")
    block = text[text.index(heading):]
    end = block.find("\n## ")   # the next section, if this is not the last
    block = block if end < 0 else block[:end]
    tables, section, intervals = SWEEPS[heading]
    for name in tables:
        for row in csv.DictReader((ROOT / f"results/mini/{section}/{name}.csv").open(encoding="utf-8")):
            assert row["Avg"] in block, f"{heading}: {row['model']} {row['Avg']} ({section}/{name}.csv) is not printed"
    for name in intervals:
        for row in csv.DictReader((ROOT / f"results/mini/{section}/{name}.csv").open(encoding="utf-8")):
            r = lambda x: Decimal(x).quantize(Decimal("0.1"), ROUND_HALF_UP)  # noqa: E731  (54.25 -> 54.3)
            shown = f"{r(row['value'])} [{r(row['low'])}, {r(row['high'])}]"
            assert shown in block, f"{heading}: {shown} ({section}/{name}.csv) is not printed"
