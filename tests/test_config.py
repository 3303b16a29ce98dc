import dataclasses
import json

import pytest

from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError, UnknownDatasetError


def test_defaults_are_the_tutorials_recipe():
    config = TrainingConfig()
    assert (config.dataset, config.epochs, config.batch_size, config.hidden_units) == ("mnist", 5, 64, (512,))
    assert (config.activation, config.optimizer, config.learning_rate) == ("relu", "adam", 0.001)
    assert (config.dropout, config.validation_split, config.seed) == (0.0, 0.0, 0)


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainingConfig().epochs = 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "cifar"}, "unknown data set"),
        ({"epochs": 0}, "epochs must be a positive"),
        ({"epochs": -3}, "epochs must be a positive"),
        ({"batch_size": 0}, "batch_size must be a positive"),
        ({"batch_size": 2.5}, "batch_size must be a positive"),
        ({"hidden_units": (512, 0)}, "hidden_units"),
        ({"hidden_units": ()}, "hidden_units"),
        ({"hidden_units": "512"}, "hidden_units"),
        ({"activation": "wiggle"}, "unknown activation"),
        ({"optimizer": "magic"}, "unknown optimizer"),
        ({"dropout": 1.0}, "dropout"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"validation_split": -0.1}, "validation_split"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise_value_errors_that_name_the_setting(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**changes)
    with pytest.raises(ValueError):  # ConfigError is a ValueError, as keras-io validates
        TrainingConfig(**changes)


def test_unknown_dataset_has_its_own_error_type():
    with pytest.raises(UnknownDatasetError):
        TrainingConfig(dataset="svhn")


def test_json_round_trip_restores_an_equal_config():
    config = TrainingConfig(hidden_units=(512, 256), dropout=0.2, seed=3)
    restored = TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and restored.hidden_units == (512, 256)


def test_from_dict_refuses_unknown_settings():
    with pytest.raises(ConfigError, match="unknown training settings: colour"):
        TrainingConfig.from_dict({**TrainingConfig().to_dict(), "colour": "red"})


def test_short_name_describes_the_run():
    assert TrainingConfig(hidden_units=(512, 512), seed=2).short_name() == "mnist-512x512-e5-b64-s2"
