"""A prediction record's answer: the decision of a binary score, the class of a multiclass output, the value
and the alarm of a regression, on the side of the threshold the bundle names."""

from edge_agent import metrics
from edge_agent.pipeline import outcome


def test_a_regression_alarms_at_or_above_its_threshold_by_default():
    assert outcome("regression", 3.0, 3.0)["alarm"] == 1
    assert outcome("regression", 2.9, 3.0) == {"prediction": 2.9, "score": 2.9, "value": 2.9, "alarm": 0}


def test_a_remaining_life_alarms_at_or_below_its_threshold():
    assert outcome("regression", 30.9, 30.93, alarm="below")["alarm"] == 1
    assert outcome("regression", 31.0, 30.93, alarm="below")["alarm"] == 0


def test_a_regression_without_a_threshold_has_no_alarm():
    assert "alarm" not in outcome("regression", 5.0, None, alarm="below")


def test_the_alarm_threshold_is_chosen_on_the_predictions_not_the_level():
    true = [10, 20, 29, 30, 31, 32, 40, 45]
    predicted = [12, 22, 31.5, 31.8, 34, 35, 41, 44]  # reads ~2 cycles high near the level
    threshold, f1 = metrics.best_alarm_threshold(true, predicted, 30, "below")
    assert f1 == 1.0 and 31.8 <= threshold < 34
    assert metrics.alarms(predicted, threshold, "below").tolist() == [True] * 4 + [False] * 4
