"""disease_kind_id, the prompt_label of label-aware contrastive targets: a study whose only
abnormal labels are uncertain is not a normal study."""

from __future__ import annotations

import math

import torch

from mmclip.data.collate import disease_kind_id
from mmclip.models import contrastive_targets

NORMAL = disease_kind_id({"No Finding": 1})


def test_uncertain_only_study_is_not_no_finding():
    """Before: {"Cardiomegaly": -1} had the No Finding id."""
    uncertain = disease_kind_id({"Cardiomegaly": -1, "Edema": 0})
    assert uncertain >= 0
    assert uncertain != NORMAL
    assert uncertain != disease_kind_id({"Cardiomegaly": 1})


def test_normal_studies_share_one_kind():
    assert disease_kind_id({"Cardiomegaly": 0, "Edema": 0}) == NORMAL
    assert disease_kind_id({"No Finding": 1, "Edema": 0}) == NORMAL
    assert disease_kind_id({"No Finding": -1}) == NORMAL  # no finding is uncertain


def test_uncertain_kinds_are_the_set_of_uncertain_findings():
    a = disease_kind_id({"Edema": -1, "Cardiomegaly": -1, "Pneumonia": 0})
    b = disease_kind_id({"Cardiomegaly": -1.0, "Edema": -1.0, "Atelectasis": None})
    assert a == b
    assert a != disease_kind_id({"Edema": -1})


def test_positive_findings_decide_the_kind_beside_uncertain_ones():
    assert disease_kind_id({"Edema": 1, "Cardiomegaly": -1}) == disease_kind_id({"Edema": 1})


def test_unknown_labels_stay_minus_one():
    assert disease_kind_id({}) == -1
    assert disease_kind_id({"Edema": None, "Cardiomegaly": math.nan}) == -1


def test_uncertain_study_is_not_a_label_aware_positive_of_normal_studies():
    labels = torch.tensor(
        [
            NORMAL,
            disease_kind_id({"Cardiomegaly": 0}),
            disease_kind_id({"Cardiomegaly": -1}),
        ]
    )
    targets = contrastive_targets(labels, 3, torch.device("cpu"))
    assert float(targets[0, 1]) == 0.5  # two normal studies: each other's positives
    assert float(targets[2, 0]) == 0.0 and float(targets[0, 2]) == 0.0
    assert float(targets[2, 2]) == 1.0
