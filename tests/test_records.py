import json

from bdunlearn.records import METRIC_KEYS, base_record, summary_table, write_record


def test_record_has_contract_keys_and_is_written_atomically(compose, tmp_path):
    from bdunlearn.preflight import validated

    record = base_record(validated(compose("seed=3", "attack.target_class=4")))
    for key in ("status", "model", "pretrained", "dataset", "attack", "defense", "seed", "target_class", "poison_rate", "config_hash"):
        assert key in record
    assert all(record[k] is None for k in METRIC_KEYS)
    assert record["seed"] == 3 and record["target_class"] == 4
    path = write_record(tmp_path, record)
    assert json.loads(path.read_text()) == record
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_config_hash_ignores_logging_but_not_science(compose):
    from bdunlearn.preflight import validated

    base = base_record(validated(compose()))["config_hash"]
    assert base_record(validated(compose("logger.wandb.project=other", "eval_batch_size=7")))["config_hash"] == base
    assert base_record(validated(compose("seed=1")))["config_hash"] != base


def test_summary_table_shows_three_rows():
    record = {"defense": "tbar", "alpha": 0.5}
    for suffix in ("_pretrained", "_backdoored", ""):
        record.update({f"clean_acc{suffix}": 0.9, f"asr{suffix}": 0.1, f"robust_acc{suffix}": None})
    lines = summary_table(record).splitlines()
    assert len(lines) == 4 and "tbar (alpha=0.5)" in lines[-1] and lines[1].startswith("pretrained")


def test_the_summary_shows_the_other_operating_point_only_where_it_differs():
    from bdunlearn.records import summary_table

    base = {"defense": "tbar", "alpha": 0.7, "alpha_rule": "kappa", "clean_acc": 0.9, "asr": 0.4, "robust_acc": 0.5}
    other = {"alpha_asr_target": 1.2, "clean_acc_asr_target": 0.7, "asr_asr_target": 0.01, "robust_acc_asr_target": 0.8}
    assert "by ASR target (alpha=1.2)" in summary_table({**base, **other})
    assert "by ASR target" not in summary_table({**base, **other, "alpha_asr_target": 0.7})
