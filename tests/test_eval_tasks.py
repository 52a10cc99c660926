"""Tasks as data: the Appendix C templates render the paper's examples, every YAML loads, demonstrations
never come from the scored items, and unknown names fail with the names that exist."""
import json

import pytest

from afp_lib.eval import prompts
from afp_lib.eval.prompts import flores, join_demonstrations
from afp_lib.eval.tasks import TASKS, check_langs, load_task_data, parse_task

# The paper's 3-shot English examples (Tables 15-20), gold label filled in. The PDF text has a space between
# an underlined label and the comma after it ("Also , We"); that is the underline markup, not the template
# (Lin et al.'s "{premise}, right? {label}, {hypothesis}"), so it is written without it here.
TABLE15 = [
    ({"premise": "We ask every nation to join us.", "hypothesis": "We need at least 10 countries to join us.", "label": 1},
     "We ask every nation to join us., right? Also, We need at least 10 countries to join us."),
    ({"premise": "One of the benefits we get of course is travel.", "hypothesis": "Traveling is one perk we get.", "label": 0},
     "One of the benefits we get of course is travel., right? Yes, Traveling is one perk we get."),
    ({"premise": "Serious crime down, but murders increase.", "hypothesis": "There has been a rise in murders.", "label": 0},
     "Serious crime down, but murders increase., right? Yes, There has been a rise in murders."),
    ({"premise": "So I'm not really sure why.", "hypothesis": "I am certain as to the reason why.", "label": 2},
     "So I'm not really sure why., right? No, I am certain as to the reason why."),
]
TABLE16 = [
    ({"sentence1": "Write anywhere , run once", "sentence2": "Write anywhere , once run", "label": 0},
     "Write anywhere , run once, right? No, Write anywhere , once run"),
    ({"sentence1": "It was Easipower that said ;", "sentence2": "It said that Easipower was ,", "label": 1},
     "It was Easipower that said ;, right? Yes, It said that Easipower was ,"),
    ({"sentence1": "In 1951 , he died and retired in 1956 .", "sentence2": "He died in 1951 and retired in 1956 .", "label": 0},
     "In 1951 , he died and retired in 1956 ., right? No, He died in 1951 and retired in 1956 ."),
    ({"sentence1": "Green took over Park 's No .", "sentence2": "Park Green took over No .", "label": 1},
     "Green took over Park 's No ., right? Yes, Park Green took over No ."),
]
TABLE17 = [
    ({"premise": "The woman resigned.", "question": "cause", "choice1": "She thinks her boss is behaving immorally.",
      "choice2": "She got promoted.", "label": 0},
     "cause: The woman resigned. because She thinks her boss is behaving immorally."),
    ({"premise": "I pulled the rubber band.", "question": "effect", "choice1": "It flung across the room.",
      "choice2": "It stretches out.", "label": 1}, "effect: I pulled the rubber band. so It stretches out."),
    ({"premise": "My skin suddenly broke out in a rash.", "question": "cause", "choice1": "I came across poison ivy in my yard.",
      "choice2": "I washed my face.", "label": 0},
     "cause: My skin suddenly broke out in a rash. because I came across poison ivy in my yard."),
    ({"premise": "The girl pinched her nose.", "question": "cause", "choice1": "The baby soiled the diaper.",
      "choice2": "She ate a cookie.", "label": 0}, "cause: The girl pinched her nose. because The baby soiled the diaper."),
]
_S = ["Ava started to notice wrinkles by her eyes.", "She bought an expensive wrinkle cream.", "She applied it every night.",
      "After a month she checked her eyes out carefully."]
TABLE18 = [
    ({**{f"input_sentence_{i + 1}": s for i, s in enumerate(_S)}, "sentence_quiz1": "She was sad.",
      "sentence_quiz2": "She was happy to see her wrinkles were gone.", "answer_right_ending": 2},
     "Ava started to notice wrinkles by her eyes. She bought an expensive wrinkle cream. She applied it every night. "
     "After a month she checked her eyes out carefully. She was happy to see her wrinkles were gone."),
]
TABLE19 = [
    ({"sentence": "Charles Dickinson shot at Andrew Jackson, so _ started reloading.", "option1": "Charles Dickinson",
      "option2": "Andrew Jackson", "answer": "1"}, "Charles Dickinson shot at Andrew Jackson, so Charles Dickinson started reloading."),
    ({"sentence": "The cheetah outran the antelope so _ got to eat.", "option1": "The antelope", "option2": "The cheetah",
      "answer": "2"}, "The cheetah outran the antelope so The cheetah got to eat."),
    ({"sentence": "The lawyer asked the witness a question, but _ was reluctant to repeat it.", "option1": "The lawyer",
      "option2": "The witness", "answer": "1"},
     "The lawyer asked the witness a question, but The lawyer was reluctant to repeat it."),
    ({"sentence": "The outlet powered the lamp when _ had electricity.", "option1": "The outlet", "option2": "The lamp",
      "answer": "1"}, "The outlet powered the lamp when The outlet had electricity."),
]


def _gold(task, doc):
    ex = TASKS[task].example(doc, "en")
    return ex.candidates[ex.gold]


@pytest.mark.parametrize("task,rows", [("xnli", TABLE15), ("pawsx", TABLE16), ("xcopa", TABLE17),
                                       ("xstorycloze", TABLE18), ("xwinograd", TABLE19)])
def test_templates_render_the_papers_examples(task, rows):
    for doc, text in rows:
        assert _gold(task, doc) == text
    # the 3-shot prompt: demonstrations joined by </s>, then the query (here with its predicted label)
    if len(rows) == 4:
        paper = "</s>".join(text for _, text in rows)
        assert join_demonstrations([_gold(task, d) for d, _ in rows[:3]], _gold(task, rows[3][0])) == paper


def test_label_sits_mid_sentence_and_candidates_follow_the_verbalizer():
    ex = TASKS["xnli"].example(TABLE15[0][0], "en")
    assert ex.candidates == tuple(f"We ask every nation to join us., right? {w}, We need at least 10 countries to join us."
                                  for w in ("Yes", "Also", "No"))
    assert TASKS["pawsx"].example(TABLE16[1][0], "en").candidates[1].startswith("It was Easipower that said ;, right? Yes,")


def test_flores_template_table20():
    demo = flores("He recently lost against Raonic in the Brisbane Open.", "English", "French",
                  "Il a récemment perdu un match contre Raonic durant l’Open de Brisbane.")
    assert demo == ("English: He recently lost against Raonic in the Brisbane Open. = French: Il a récemment perdu "
                    "un match contre Raonic durant l’Open de Brisbane.")
    assert flores("Piquet Jr. was sacked after the 2009 Hungarian Grand Prix.", "English", "French") == \
        "English: Piquet Jr. was sacked after the 2009 Hungarian Grand Prix. = French:"


def test_english_connectors_by_default_native_as_option():
    doc = {"premise": "他来了。", "hypothesis": "他在这里。", "label": 0}
    assert TASKS["xnli"].example(doc, "zh").candidates[0] == "他来了。, right? Yes, 他在这里。"
    assert TASKS["xnli"].example(doc, "zh", "native").candidates[0] == "他来了。, 正确? 是的, 他在这里。"
    cope = {"premise": "我掏空了口袋。", "question": "effect", "choice1": "票根。", "choice2": "武器。", "label": 0}
    assert TASKS["xcopa"].example(cope, "zh", "native").candidates[0] == "effect: 我掏空了口袋。 所以 票根。"
    with pytest.raises(ValueError, match="'english'"):
        TASKS["xnli"].words_for("zh", "chinese")


def test_unknown_task_language_and_yaml_key_fail_with_what_exists():
    with pytest.raises(KeyError, match="did you mean 'xnli'.*known: flores, pawsx, xcopa"):
        TASKS["xnl"]
    with pytest.raises(KeyError, match="unknown language 'ja' in task 'xcopa'.*known: en, et"):
        TASKS["xcopa"].lang("ja")
    with pytest.raises(KeyError, match="unknown language 'xx'"):
        check_langs(["xnli", "xcopa"], ["en", "xx"])
    assert check_langs(["xnli", "pawsx"], ["th"]) == {"xnli": ["th"], "pawsx": []}   # only where it exists
    bad = {"task": "t", "title": "T", "order": 9, "metrics": ["acc"], "dataset": "d", "splits": {"test": "test", "demos": "validation"}, "languages": {"en": {"config": "en"}},
           "prompt": "xnli", "verbalizer": {}}
    with pytest.raises(KeyError, match="unknown key 'verbalizer' in broken.yaml"):
        parse_task(bad, "broken.yaml")
    del bad["verbalizer"]
    with pytest.raises(KeyError, match="unknown prompt 'xnly'.*did you mean 'xnli'"):
        parse_task({**bad, "prompt": "xnly"}, "broken.yaml")


def test_every_prompt_is_registered_and_every_language_has_a_config():
    for task in TASKS.values():
        if task.kind == "multiple_choice":
            assert task.prompt in prompts.PROMPTS
        assert all(lang.config for lang in task.languages.values())
    assert TASKS["xwinograd"].lang("ja").config == "jp"          # ISO 639-1 outside, dataset names inside


def _key(row):
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("task", ["xnli", "pawsx", "xcopa", "xstorycloze", "xwinograd"])
def test_every_language_loads_renders_and_demos_never_come_from_test(mirror, task):
    t = TASKS[task]
    for code in t.languages:
        data = load_task_data(t, code, max_items=5)
        assert len(data.test) == 5 and data.pool
        for doc in data.test:
            ex = t.example(doc, code)
            assert 0 <= ex.gold < len(ex.candidates) and len(set(ex.candidates)) == len(ex.candidates)
        full = load_task_data(t, code)                           # all scored items vs the pool
        assert not {_key(r) for r in full.test} & {_key(r) for r in full.pool}, (task, code)
        assert data.split != "test" or t.splits.test == "test"
        assert all(_key(r) in {_key(x) for x in full.test} for r in data.test)


def test_offline_fallbacks_are_declared_not_silent(mirror):
    xnli = load_task_data(TASKS["xnli"], "zh")
    assert xnli.split == "validation" and xnli.pool_split == "zh:validation[holdout 200]"
    assert len(xnli.test) == 2490 - 200 and len(xnli.pool) == 200
    wino = load_task_data(TASKS["xwinograd"], "zh")
    assert len(wino.test) == 16 and wino.pool_split.startswith("en:")  # zh: all 16 rows scored, English demos
    assert load_task_data(TASKS["xwinograd"], "fr").pool_split == "fr:test[holdout 20]"
    assert load_task_data(TASKS["xcopa"], "en").pool_split == "en:validation"
    assert load_task_data(TASKS["xcopa"], "zh", demo_lang="en").pool_split == "en:validation"  # cross-lingual ICL


def test_max_items_subset_is_fixed(mirror):
    a = load_task_data(TASKS["pawsx"], "en", max_items=7)
    b = load_task_data(TASKS["pawsx"], "en", max_items=7)
    assert a.test == b.test and len(a.test) == 7


@pytest.mark.parametrize("n_zh,own", [(16, False), (504, True)])
def test_xwinograd_zh_takes_english_demos_only_when_it_has_too_few_rows(monkeypatch, n_zh, own):
    """The mirror has 16 zh rows (English demonstrations, all 16 scored); the hub has 504: zh holds out its own."""
    import afp_lib.eval.tasks as T
    sizes = {"zh": n_zh, "en": 100}
    monkeypatch.setattr(T, "_RESOLVED", {})
    monkeypatch.setattr(T, "_rows", lambda dataset, config, split: tuple(
        {"sentence": f"{config} {i} _ .", "option1": "a", "option2": "b", "answer": "1"} for i in range(sizes[config])))
    data = load_task_data(TASKS["xwinograd"], "zh")
    if own:
        assert data.pool_split == "zh:test[holdout 20]" and len(data.test) == n_zh - 20 and len(data.pool) == 20
        assert all(r["sentence"].startswith("zh") for r in data.pool)
    else:
        assert data.pool_split.startswith("en:") and len(data.test) == n_zh
        assert all(r["sentence"].startswith("en") for r in data.pool)


def test_task_lists_and_metrics_are_read_from_the_yamls(tmp_path):
    """Records, tables and the evaluation grid list the tasks of tasks/*.yaml, in their `order`; a new YAML
    is one more task everywhere; a multiple-choice task declares the metrics the ICL scorer writes."""
    import shutil

    from afp_lib.analysis import records, render
    from afp_lib.eval import icl
    from afp_lib.eval.config import EvalConfig
    from afp_lib.eval.tasks import ICL_TASKS, METRICS, TASK_DIR, load_tasks
    assert list(TASKS) == ["xnli", "pawsx", "xcopa", "xstorycloze", "xwinograd", "flores"]
    assert ICL_TASKS == records.ICL_TASKS == tuple(EvalConfig().tasks) == tuple(TASKS)[:5]
    assert records.TASKS == tuple(TASKS) and records.METRICS == METRICS == ("acc", "acc_norm", "acc_tok", "bleu", "chrf")
    assert render.NAMES["pawsx"] == "PAWS-X" and set(render.NAMES) == set(TASKS)
    assert all(TASKS[t].metrics == icl.METRICS for t in ICL_TASKS) and TASKS["flores"].metrics == ("bleu", "chrf")
    for path in TASK_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    text = (TASK_DIR / "xcopa.yaml").read_text(encoding="utf-8")
    (tmp_path / "copa2.yaml").write_text(text.replace("task: xcopa", "task: copa2").replace("order: 3", "order: 4"),
                                         encoding="utf-8")
    assert list(load_tasks(tmp_path)) == ["xnli", "pawsx", "xcopa", "copa2", "xstorycloze", "xwinograd", "flores"]
    (tmp_path / "copa2.yaml").write_text(text.replace("metrics: [acc, acc_norm, acc_tok]", "metrics: []"), encoding="utf-8")
    with pytest.raises(ValueError, match="copa2.yaml: metrics=\\[\\] must be a non-empty list"):
        load_tasks(tmp_path)


def test_every_task_has_a_dry_run_item_in_its_dataset_schema():
    """The dry run's synthetic rows (plan/dryrun.py) cover every registered task, field for field as the
    loaders check them (data/hub.py SCHEMAS), so a new task cannot be left out of `paper-plan --dry-run`."""
    from afp_lib.data.hub import SCHEMAS
    from afp_lib.plan.dryrun import SYNTHETIC_ITEMS, sentence
    assert set(SYNTHETIC_ITEMS) == set(TASKS)
    for name, task in TASKS.items():
        item, schema = SYNTHETIC_ITEMS[name](lambda i: sentence("en", i), 3), SCHEMAS[task.dataset]
        assert set(item) == set(schema), name
        assert all(isinstance(item[k], types) for k, types in schema.items()), name
        if task.kind == "multiple_choice":
            assert len(task.example(item, "en").candidates) >= 2


def test_prompts_register_by_name_once():
    assert list(prompts.PROMPTS) == ["xnli", "pawsx", "xcopa", "xstorycloze", "xwinograd"]
    with pytest.raises(ValueError, match="'xnli' is registered twice"):
        prompts.prompt(prompts.xnli)
