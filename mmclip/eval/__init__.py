"""Evaluation: zero-shot classification, linear probes, fine-tuning, retrieval, AttMIM masks,
metrics, plots and reports.

Example::

    from mmclip.eval import evaluate_zero_shot
    from mmclip.models import MMCLIPModel
    from mmclip.train import load_records

    model = MMCLIPModel.from_pretrained("runs/demo/model")
    test = load_records("synthetic", "data/synthetic", split="test")
    result = evaluate_zero_shot(model, test, ["Cardiomegaly", "Pleural Effusion"])
    mean_auroc = result.mean_auroc
"""

from .embed import embedding_arrays, encode_records, encode_texts, label_matrix, load_images
from .finetune import FinetuneConfig, ImageClassifier, finetune
from .masks import GuidedMasks, LesionOverlap, guided_masks, lesion_overlap, lesion_patches
from .metrics import (
    BinaryMetrics,
    accuracy,
    binary_metrics,
    bootstrap_ci,
    f1_score,
    mean_std,
    precision_recall,
    recall_at_k,
    roc_auc,
    roc_curve,
)
from .plots import plot_attmim_masks, plot_loss_curve, plot_roc_curves
from .probe import FewLabelResult, linear_probe, stratified_subset
from .public_cxr import PublicEvaluation, evaluate_public_cxr, public_summary
from .report import (
    fewlabel_table,
    lesion_table,
    retrieval_table,
    write_json,
    write_markdown,
    zero_shot_table,
)
from .retrieval import RetrievalResult, evaluate_retrieval, retrieval_metrics
from .zeroshot import (
    ZeroShotResult,
    build_classifier,
    evaluate_zero_shot,
    multiclass_probabilities,
    zero_shot_probabilities,
)

__all__ = [
    "BinaryMetrics",
    "FewLabelResult",
    "FinetuneConfig",
    "GuidedMasks",
    "ImageClassifier",
    "LesionOverlap",
    "PublicEvaluation",
    "RetrievalResult",
    "ZeroShotResult",
    "accuracy",
    "binary_metrics",
    "bootstrap_ci",
    "build_classifier",
    "embedding_arrays",
    "encode_records",
    "encode_texts",
    "evaluate_public_cxr",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "f1_score",
    "fewlabel_table",
    "finetune",
    "guided_masks",
    "label_matrix",
    "lesion_overlap",
    "lesion_patches",
    "lesion_table",
    "linear_probe",
    "load_images",
    "mean_std",
    "multiclass_probabilities",
    "plot_attmim_masks",
    "plot_loss_curve",
    "plot_roc_curves",
    "precision_recall",
    "public_summary",
    "recall_at_k",
    "retrieval_metrics",
    "retrieval_table",
    "roc_auc",
    "roc_curve",
    "stratified_subset",
    "write_json",
    "write_markdown",
    "zero_shot_probabilities",
    "zero_shot_table",
]
