"""The one formatter of settings and metrics, as the tables, the report and sweep.md show them."""

import pytest

from digitlab.analysis.formatting import format_value


@pytest.mark.parametrize("value, kind, shown", [
    (0.97884, "percent", "97.88%"), (0.06412, "loss", "0.0641"), (6.14, "seconds", "6.1"),
    (49012.3, "rate", "49,012"), (5, "int", "5"), ("adam", "text", "adam"), (0.001, "text", "0.001"),
    ([512, 256], "text", "512,256"), ((), "text", ""), (None, "percent", "-"), ("finished", "percent", "finished"),
    (0.123456, "number", "0.1235"), (49012.3, "number", "49,012"), (5, "number", "5"),
])
def test_values_are_formatted_for_people(value, kind, shown):
    assert format_value(value, kind) == shown


def test_list_items_take_the_kind_and_the_separator_and_none_its_stand_in():
    assert format_value([1.23456, 2.5], "number", separator=", ") == "1.235, 2.5"
    assert format_value(None, missing="") == "" and format_value([None, 3], missing="?") == "?,3"


@pytest.mark.parametrize("probability, shown", [
    (0.97, "97%"), (0.994, "99%"), (0.995, ">99%"), (0.9999, ">99%"), (1.0, ">99%"), (0.5, "50%"),
    (0.004, "<1%"), (0.0051, "1%"), (1e-9, "<1%"), (0.0, "0%"), (1.0000001, ">99%"), (-1e-9, "0%"),
])
def test_probabilities_have_one_rounding_that_never_says_certain(probability, shown):
    from digitlab.analysis.formatting import format_probability

    assert format_probability(probability) == shown
    assert format_value(probability, "probability") == shown


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_value_that_is_no_probability_is_refused(bad):
    from digitlab.analysis.formatting import format_probability

    with pytest.raises(ValueError, match="between 0 and 1"):
        format_probability(bad)
