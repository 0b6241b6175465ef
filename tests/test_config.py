"""mmclip.config: the one dict <-> dataclass mapping and the dotted override syntax, shared by
the model config (create_model / apply_overrides) and the training config (--set)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from mmclip.config import (
    ConfigError,
    apply_dotted,
    apply_set,
    config_from_dict,
    config_to_dict,
    field_type,
    flatten,
    merge,
    parse_value,
)
from mmclip.models import MMCLIPConfig, apply_overrides, create_model, get_model_config
from mmclip.train import TrainConfig


@dataclass
class Inner:
    rate: float = 0.5
    depth: int | None = None


@dataclass
class Item:
    name: str = "a"
    ratio: float = 1.0


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    items: list[Item] = field(default_factory=lambda: [Item()])
    options: dict[str, Any] = field(default_factory=dict)
    flag: bool = True


# ------------------------------------------------------------------------------ dict <-> dataclass
def test_inf_round_trips_through_the_string_inf():
    config = Outer(inner=Inner(rate=float("inf")), options={"low": float("-inf")})
    tree = config_to_dict(config)
    assert tree["inner"]["rate"] == "inf" and tree["options"]["low"] == "-inf"
    assert tree["items"] == [{"name": "a", "ratio": 1.0}]
    back = config_from_dict(Outer, tree)
    assert math.isinf(back.inner.rate) and back.inner.rate > 0
    assert back.items == [Item()] and back.flag is True


def test_values_are_coerced_to_the_field_types():
    config = config_from_dict(
        Outer, {"inner": {"rate": 1, "depth": 3.0}, "items": [{"name": 7, "ratio": "0.25"}]}
    )
    assert config.inner == Inner(rate=1.0, depth=3)
    assert isinstance(config.inner.depth, int)
    assert config.items == [Item(name="7", ratio=0.25)]
    assert config_from_dict(Outer, {"inner": {"depth": None}}).inner.depth is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"flag": "yes"}, r"'flag' must be bool; got 'yes'"),
        ({"inner": {"rate": "fast"}}, r"'inner\.rate' must be float"),
        ({"inner": {"depth": 2.5}}, r"'inner\.depth' must be int"),
        ({"inner": {"rate": None}}, r"'inner\.rate' must not be null"),
        ({"items": {"name": "b"}}, r"'items' must be a list"),
        ({"items": [{"ratio": True}]}, r"'items\.0\.ratio' must be float"),
        ({"inner": 3}, r"'inner' must be a mapping"),
    ],
)
def test_a_wrongly_typed_value_names_its_dotted_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(Outer, data)


def test_an_unknown_key_names_the_dotted_key_and_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'inner\.rte'.*rate, depth"):
        config_from_dict(Outer, {"inner": {"rte": 1}})
    with pytest.raises(ValueError, match=r"unknown config key 'items\.0\.nme'"):
        config_from_dict(Outer, {"items": [{"nme": "x"}]})  # ConfigError is a ValueError


def test_field_type_follows_a_dotted_key_through_the_sections():
    assert field_type(TrainConfig, "optim.lr") is float
    assert field_type(TrainConfig, "steps") is int
    assert field_type(TrainConfig, "model.tokenizer") == str | None
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.learning_rate'"):
        field_type(TrainConfig, "optim.learning_rate")
    with pytest.raises(ConfigError, match="'steps' is a value, not a section"):
        field_type(TrainConfig, "steps.x")


# ------------------------------------------------------------------------------ dotted overrides
@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("null", None), ("42", 42), ("1e-3", 1e-3), ("[0.9, 0.98]", [0.9, 0.98])],
)
def test_values_are_parsed_as_yaml_scalars(text, value):
    assert parse_value(text) == value


def test_inf_nan_and_words_parse_as_floats_or_stay_text():
    assert parse_value("inf") == float("inf") and parse_value("-inf") == float("-inf")
    assert math.isnan(parse_value("nan"))
    assert parse_value("mmclip-tiny") == "mmclip-tiny" and parse_value("") == ""
    assert parse_value("e.g") == "e.g"


def test_apply_set_reaches_nested_mappings_and_list_items():
    tree = config_to_dict(Outer(items=[Item(), Item(name="b")]))
    apply_set(tree, "inner.rate=0.1")
    apply_set(tree, "items.1.ratio=0.3")
    apply_set(tree, "options.columns.first=[Edema]")  # free-form mappings grow
    assert tree["inner"]["rate"] == 0.1 and tree["items"][1]["ratio"] == 0.3
    assert tree["options"] == {"columns": {"first": ["Edema"]}}
    assert config_from_dict(Outer, tree).items[1] == Item(name="b", ratio=0.3)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("inner.rate", r"'inner\.rate' must look like key\.sub=value"),
        ("inner..rate=1", "has an empty key"),
        ("items.2.ratio=1", r"unknown config key 'items\.2' \(list of 1 items\)"),
        ("items.x=1", r"unknown config key 'items\.x'"),
        ("flag.sub=1", "config key 'flag' is a value, not a section"),
    ],
)
def test_a_bad_assignment_names_the_key(assignment, message):
    tree = config_to_dict(Outer())
    with pytest.raises(ConfigError, match=message):
        apply_set(tree, assignment)


def test_apply_dotted_takes_python_values_as_they_are():
    tree = config_to_dict(Outer())
    apply_dotted(tree, {"inner.rate": float("inf"), "items.0.name": "1e-3", "flag": False})
    config = config_from_dict(Outer, tree)
    assert config.inner.rate == float("inf") and config.items[0].name == "1e-3"
    assert config.flag is False


def test_flatten_gives_the_dotted_keys():
    tree = {"attmim": {"tau_final": 1.0}, "empty": {}, "items": [1, 2], "use_unpaired": False}
    assert flatten(tree) == {"attmim.tau_final": 1.0, "items": [1, 2], "use_unpaired": False}


def test_merge_merges_mappings_and_replaces_the_keys_it_is_given():
    tree = {"model": {"name": "a", "overrides": {"x": 1}}, "optim": {"lr": 1, "eps": 2}}
    data = {"model": {"overrides": {"y": 2}}, "optim": {"lr": 3}}
    merged = merge(tree, data, replace=("model.overrides",))
    assert merged is tree
    assert tree == {"model": {"name": "a", "overrides": {"y": 2}}, "optim": {"lr": 3, "eps": 2}}
    tree = {"model": {"overrides": {"x": 1}}}
    merge(tree, {"model": {"overrides": {"y": 2}}})
    assert tree == {"model": {"overrides": {"x": 1, "y": 2}}}


# ------------------------------------------------------------------------------ the model config
def test_dotted_overrides_equal_the_nested_section_dict_and_the_strings():
    base = get_model_config("mmclip-tiny")
    dotted = apply_overrides(base, {"attmim.tau_final": float("inf"), "use_unpaired": False})
    nested = apply_overrides(base, attmim={"tau_final": float("inf")}, use_unpaired=False)
    strings = apply_overrides(base, ["attmim.tau_final=inf", "use_unpaired=false"])
    assert dotted == nested == strings
    assert dotted.attmim.tau_final == float("inf") and not dotted.use_unpaired
    assert dotted.attmim.mask_ratio == base.attmim.mask_ratio  # the rest of the section stays
    assert base.attmim.tau_final == 0.5  # the base config is not changed


def test_create_model_with_dotted_overrides_equals_create_model_with_a_section_dict():
    overrides = {"vision.depth": 1, "text.num_layers": 1, "attmim.tau_final": float("inf")}
    torch.manual_seed(0)
    dotted = create_model("mmclip-tiny", overrides=overrides)
    torch.manual_seed(0)
    nested = create_model(
        "mmclip-tiny", vision={"depth": 1}, text={"num_layers": 1}, attmim={"tau_final": "inf"}
    )
    assert dotted.config == nested.config
    assert dotted.config.vision.depth == 1 and math.isinf(dotted.config.attmim.tau_final)
    state, other = dotted.state_dict(), nested.state_dict()
    assert state.keys() == other.keys()
    assert all(torch.equal(state[k], other[k]) for k in state)


def test_the_double_underscore_form_is_refused_with_its_dotted_equivalent():
    message = r'use create_model\(name, overrides=\{"attmim\.tau_final": \.\.\.\}\)'
    with pytest.raises(ValueError, match=message):
        create_model("mmclip-tiny", attmim__tau_final=float("inf"))
    with pytest.raises(ConfigError, match=message):
        apply_overrides(get_model_config("mmclip-tiny"), {"attmim__tau_final": 1.0})
    with pytest.raises(ConfigError, match=r'overrides=\{"loss_weights\.mim": \.\.\.\}'):
        apply_overrides(get_model_config("mmclip-tiny"), ["loss_weights__mim=0"])


def test_model_config_errors_name_the_dotted_key_and_stay_value_errors():
    base = get_model_config("mmclip-tiny")
    with pytest.raises(ValueError, match=r"unknown config key 'attmim\.tau'.*tau_final"):
        apply_overrides(base, {"attmim.tau": 1.0})
    with pytest.raises(ValueError, match=r"'vision\.depth' must be int; got 'deep'"):
        apply_overrides(base, {"vision.depth": "deep"})
    with pytest.raises(ValueError, match="'use_unpaired' is a value, not a section"):
        apply_overrides(base, {"use_unpaired.paired": True})
    with pytest.raises(ValueError, match=r"unknown config key 'attmim\.tau'"):
        MMCLIPConfig.from_dict({"attmim": {"tau": 1}})


def test_the_model_config_json_round_trip_keeps_inf():
    config = apply_overrides(get_model_config("mmclip-tiny"), {"attmim.tau_final": "inf"})
    assert '"tau_final": "inf"' in config.to_json()
    assert MMCLIPConfig.from_json(config.to_json()) == config
