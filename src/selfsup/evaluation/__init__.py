"""Evaluation of frozen embeddings: kNN, linear, few-label, SVM, gradient-boosted trees, clustering and STS protocols
and label-free diagnostics."""
from .cross_validation import cross_validated_svm
from .clustering import hungarian_accuracy, kmeans_clustering
from .diagnostics import alignment, dimension_std, embedding_diagnostics, rankme, uniformity
from .fewshot import few_label_linear, few_label_splits
from .knn import data_k, knn_accuracy, knn_predict
from .linear import DEFAULT_CS, linear_probe
from .splits import stratified_validation_split
from .sts import pair_cosines, sts_protocol
from .svm import svm_protocol
from .transfer import TRANSFER_CS, transfer_accuracy
from .trees import gradient_boosting

__all__ = [
    "DEFAULT_CS",
    "TRANSFER_CS",
    "alignment",
    "cross_validated_svm",
    "data_k",
    "dimension_std",
    "embedding_diagnostics",
    "few_label_linear",
    "few_label_splits",
    "gradient_boosting",
    "hungarian_accuracy",
    "kmeans_clustering",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "rankme",
    "stratified_validation_split",
    "pair_cosines",
    "sts_protocol",
    "svm_protocol",
    "transfer_accuracy",
    "uniformity",
]
