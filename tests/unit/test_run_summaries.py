"""What the summaries say from the agent's records: why nothing was scored, drift alarms, zero or meaningless F1,
and inspect's verdict. Pure functions on plain records (README, "Agent records")."""

import pytest

from edgectl import evaluate, inspect_bundle


def error(line, reason, message="bad"):
    return {"type": "error", "v": 1, "line": line, "reason": reason, "message": message}


def stats(samples):
    return {"type": "stats", "v": 1, "samples": samples, "windows": 0, "final": True}


def test_nothing_scored_counts_the_bad_lines_by_reason_most_frequent_first():
    records = [error(1, "bad-time", "not a time"), error(2, "field-count"), error(3, "field-count"), stats(3)]
    assert evaluate.why_nothing_scored(records) == (
        "3 bad lines (2 field-count, 1 bad-time; the first, line 1: not a time)"
    )


def test_nothing_scored_names_good_samples_that_filled_no_window_and_an_empty_input():
    assert evaluate.why_nothing_scored([stats(4)]) == "4 good samples, too few in any one stream to fill a window"
    assert evaluate.why_nothing_scored([error(2, "stale-time"), stats(2)]).endswith(
        "; 1 good sample, too few in any one stream to fill a window"
    )
    assert evaluate.why_nothing_scored([stats(0)]) == "no sample lines in it"


def test_drift_summary_counts_alarms_not_clears():
    records = [
        {"type": "drift", "detector": "psi", "state": "drift", "features": {"s2": 0.4, "s11": 0.3}},
        {"type": "drift", "detector": "psi", "state": "cleared", "features": ["s2"]},
        {"type": "drift", "detector": "page-hinkley", "state": "drift", "direction": "up"},
        {"type": "prediction", "score": 0.9},
    ]
    drift = evaluate.drift_summary(records)
    assert drift == {"alarms": 2, "psi_features": ["s11", "s2"], "score_shifts": {"up": 1}}
    assert evaluate.drift_text(drift) == "2 alarms (input features s11, s2 shifted; score moved up 1x)"
    assert evaluate.drift_text(evaluate.drift_summary([])) == "no alarm"


@pytest.mark.parametrize(
    "scores, says",
    [
        ({"f1": 0.0, "positives": 0, "n": 40}, "no window is labelled positive (of 40)"),
        ({"f1": 0.0, "positives": 7, "n": 40}, "F1 is 0, not one of the 7 positive windows was found"),
    ],
)
def test_score_warnings_for_a_meaningless_or_zero_f1(scores, says):
    (warning,) = evaluate.score_warnings(scores, "stage x")
    assert warning.startswith("stage x: ") and says in warning


def test_no_warning_for_a_real_f1_or_scores_without_positives():
    assert evaluate.score_warnings({"f1": 0.4, "positives": 7, "n": 40}, "x") == []
    assert evaluate.score_warnings({"mae": 3.0, "rmse": 4.0, "n": 40}, "x") == []  # regression: no F1
    assert evaluate.score_warnings(None, "x") == []


def test_inspect_verdict_fails_on_a_budget_or_a_signature_not_on_an_unchecked_one():
    assert inspect_bundle.verdict({"signature": {"signed": False}}) == {"status": "ok", "problems": []}
    both = {"signature": {"signed": True, "key_id": "k", "valid": False}, "budgets": {"status": "fail"}}
    assert inspect_bundle.verdict(both) == {"status": "fail", "problems": ["over-budget", "signature-mismatch"]}
    assert (
        inspect_bundle.verdict({"signature": {"signed": True, "valid": True}, "budgets": {"status": "pass"}})["status"]
        == "ok"
    )


def test_inspect_warnings_read_each_stages_validation_and_its_alarm():
    info = {
        "stages": [
            {"name": "a", "validation": {"f1": 0.0, "positives": 3, "n": 9, "method": "out-of-fold, 5 folds"}},
            {"name": "b", "validation": {"mae": 1.0, "alarm": {"f1": 0.0, "positives": 0, "n": 9}, "method": "m"}},
            {"name": "c", "validation": None},
        ]
    }
    first, second = inspect_bundle.warnings(info)
    assert first.startswith("stage a, scored out-of-fold: F1 is 0")
    assert second.startswith("stage b, scored m, its alarm: no window is labelled positive")
