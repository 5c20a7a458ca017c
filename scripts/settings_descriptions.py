"""One-line descriptions of the keys of the bundles' configs, read by :mod:`scripts.settings`.

The key listing (``python -m scripts.settings <config>``, or ``--help`` on any workflow) takes every key and
its default from the config files themselves; only the sentence that says what a key means lives here.
``tests/test_cli_settings.py`` fails when a config gains a key that has no description, so this file cannot
fall behind the configs.

:data:`DESCRIPTIONS` holds the meaning shared by all bundles; :data:`BUNDLE_DESCRIPTIONS` overrides it for a
key whose meaning differs in one bundle (``report``, ``subtyping``, ``survival``). A description that starts
with ``(derived)`` names a value the config computes from the settings: override it only to replace it.
:data:`WORKFLOWS` names the keys that are workflows (``python -m monai.bundle run <name>``).
"""

from __future__ import annotations

__all__ = ["BUNDLE_DESCRIPTIONS", "DESCRIPTIONS", "WORKFLOWS", "describe"]

#: workflow key -> what running it does
WORKFLOWS: dict[str, str] = {
    "training": "train (report bundle: one model; siblings: cross-validation folds), write models/ and eval/",
    "evaluating": "score a trained model on a labelled split, write eval/",
    "inference": "run a trained model on feature files or slides, write predictions/reports",
    "extract_features": "tile slides, encode patches, write one .h5 (and .pt) per slide",
    "export": "write the bundle as a zip (configs, code, docs, models) to dist_dir",
    "initialize": "set up the distributed process group (multi-GPU/multi-process runs)",
    "finalize": "tear down the distributed process group",
}

_DERIVED = "(derived) "

#: key -> one-line description, shared by every bundle
DESCRIPTIONS: dict[str, str] = {
    # folders and tracking
    "bundle_root": "the bundle's folder (configs/, scripts/, docs/); relative paths of the defaults start here",
    "output_dir": "folder for everything a run writes (models/, checkpoints/, eval/, reports/ ...)",
    "model_dir": "folder of the trained model (model.pt, vocab.json, model_config.json ...)",
    "checkpoint_dir": "folder of the resume checkpoints (last.pt, last.prev.pt, best.json)",
    "eval_dir": "folder of metrics, per-slide tables and the MLflow database",
    "split_dir": "folder of the cross-validation split files (reused by a re-run)",
    "reports_dir": "folder of the generated reports (<id>.txt, reports.csv, heatmaps)",
    "predictions_dir": "folder of the predictions (predictions.csv, per-slide outputs)",
    "report_bundle_dir": "the report-generation bundle's folder (its demo and pretrained encoder are reused)",
    "resume_checkpoint": "checkpoint to resume from when resume is true",
    "resume": "continue from resume_checkpoint if it exists (false: start afresh, removing the old run's files)",
    "ckpt_path": "the model weights file to load",
    "tracking_uri": "MLflow tracking URI used with --tracking mlflow (default: sqlite eval/mlruns.db)",
    "experiment_name": "MLflow experiment name",
    "run_name": "MLflow run name (null: a time stamp)",
    "register_model": "MLflow model-registry name to register the best model under (null: do not register)",
    "device": "torch device to run on (default: cuda:0 when available, else cpu)",
    "is_not_rank0": _DERIVED + "true on the non-zero ranks of a distributed run (they do not write files)",
    # data
    "dataset_dir": "folder of the per-slide feature files (.h5/.pt); null = the embedded SYNTHETIC demo",
    "annotation_file": "HistGen annotation JSON (train/val/test lists of id, report, image_path); null = demo",
    "csv_file": "CSV of slide ids and labels/outcomes; null together with dataset_dir = SYNTHETIC demo",
    "feature_files": "feature files to run on, a path or a list \"['a.h5','b.h5']\" (instead of dataset_dir)",
    "demo": "options of the embedded SYNTHETIC demo used when no dataset is given (nested keys below)",
    "report_demo_dir": "the report bundle's slide demo, reused when built with the same options (none: never)",
    "on_error": "what a bad slide or feature file does: raise (stop, naming it) or skip (log it and go on)",
    "on_missing": "slides without a usable feature file: raise, or skip (counted in the log)",
    "split": "the annotation split to score (train, val or test)",
    "max_patches": "at most this many patches per bag in training (random subset, scan order kept); null = all",
    "feature_cache_mb": "training and validation keep bags read once in memory up to this many MB each (0 = "
    "read from disk every epoch)",
    # training schedule
    "seed": "random seed (weights, shuffling, patch sampling, splits)",
    "max_epochs": "number of training epochs (the last one when early stopping does not end it sooner)",
    "batch_size": "slides per batch",
    "val_batch_size": "slides per validation batch",
    "num_workers": "DataLoader worker processes (0 = load in the main process)",
    "num_threads": "torch intra-op threads (null: automatic from the usable cores, other running jobs and the "
                   "work size, logged once; OMP_NUM_THREADS wins)",
    "provenance": _DERIVED + "what the model was trained on (dataset, synthetic or not, slides, extraction, date, "
                  "code version), saved as models/provenance.json",
    "model_provenance": _DERIVED + "the model folder's provenance.json, logged as one line at load",
    "allow_feature_mismatch": "decode feature files whose extraction settings differ from the model's "
                              "feature_extraction.json (logged as a warning; default false refuses them)",
    "demo_producer": _DERIVED + "writes the SYNTHETIC demo dataset folder (options: demo) when no data is given; "
                     "the workflow then reads it like any user's data",
    "case_csv": "CSV of case_id,path (one slide per row or paths joined by ;): one report per case of several slides",
    "stain_normalization": "none or macenko (MONAI NormalizeHEStains before the encoder steps; recorded in the "
                           "feature files)",
    "val_interval": "validate every this many epochs",
    "patience": "early stopping: epochs without a better val_metric before training stops, counted from "
                "selection_start_epoch",
    "selection_warmup": "share of the epochs, from the start, that are validated but never kept as the best model "
                        "(0.25: epochs 1-10 of 40; 0 selects from epoch 1)",
    "selection_start_epoch": _DERIVED + "the first epoch that may be kept: floor(selection_warmup * max_epochs) + 1",
    "weight_average_half_life": "validate and save an exponential moving average of the weights with this "
                                "half-life in epochs (0: the raw weights)",
    "weight_averaging": _DERIVED + "the moving average of the weights (scripts.engines.WeightAveraging)",
    "learning_rate": "optimiser learning rate",
    "weight_decay": "optimiser weight decay",
    "lr_step_size": "StepLR: epochs between learning-rate decays",
    "lr_gamma": "StepLR: factor of each learning-rate decay",
    "clip_value": "clip each gradient value to +-this (null: off)",
    "max_norm": "clip the total gradient norm to this (null: off)",
    "val_metric": "validation metric that selects the best model and drives early stopping",
    # report generation
    "vocab_threshold": "words seen fewer times than this in the training reports become <unk>",
    "max_seq_length": "longest report in tokens (training targets are cut, generation stops there)",
    "beam_size": "beam width of report generation (1 = greedy)",
    "max_len": "longest generated report in tokens (null: the model's max_seq_length)",
    "caption_metrics": "caption metrics to compute (BLEU, METEOR, ROUGE_L, CIDEr)",
    "finding_heads": "train auxiliary finding classifiers on the slide embedding (grounds the report in the slide)",
    "finding_loss_weight": "weight of the finding heads' loss next to the report loss",
    "word_dropout": "share of teacher-forced input words replaced by <unk> in training",
    "finding_phrase_decoding": ("decoding writes the finding heads' class (bans words that state another class; "
                                "a finding's sentence keeps to its words until it states the class)"),
    "text_encoder": "local sentence-embedding checkpoint for the EMB part of the REG score (null: not scored)",
    "write_findings": "write <id>.findings.json and finding columns in reports.csv",
    "report_data": _DERIVED + "the dataset (or built demo) the run uses: annotation file, feature folder, dim",
    "vocab": _DERIVED + "the report vocabulary (built from the training reports, or the model's vocab.json)",
    "key_phrases": _DERIVED + "clinical key phrases scored by the key-phrase accuracy metric",
    "findings_vocabulary": _DERIVED + "diagnoses and grades the clinical-finding metrics and heads know",
    "finding_labeler": _DERIVED + "reads finding labels from the report text for the finding heads",
    "finding_phrases": _DERIVED + "the training sentences' words that commit a sentence to a finding's class",
    "feature_extraction": _DERIVED + "extraction settings of the features, saved with the model",
    "decoding": _DERIVED + "beam size and length used to generate (the model's own unless given)",
    # slide inference and feature extraction
    "slide": "one slide path, or a list \"['a.svs','b.svs']\", to report on (features extracted first)",
    "slides_dir": "folder of slides, scanned recursively",
    "slides_csv": "CSV with a path column (and optional slide_id); wins over slides_dir",
    "slide_features_dir": "where slide inference writes the slides' feature files and thumbnails",
    "encoder_checkpoint": "local weights of the patch encoder (all encoders but builtin-small)",
    "extraction_overrides": "replace recorded extraction settings, e.g. {'assume_mpp': 0.25}",
    "extraction_batch_size": "patches per encoder batch when slide inference extracts features",
    "extraction_workers": "decode workers when slide inference extracts features",
    "heatmaps": "draw attention heatmaps of the slides",
    "progress": "show progress bars",
    "wsi_backend": "slide reader: auto, cucim or openslide",
    "target_mpp": "microns per pixel of the patches (0.5 = about 20x, 0.25 = about 40x)",
    "assume_mpp": "level-0 microns per pixel for slides without resolution metadata (null: such slides fail)",
    "mpp_tolerance": "relative gap for a pyramid level to count as at target_mpp",
    "patch_size": "patch side in pixels at target_mpp",
    "step": "grid step in pixels at target_mpp (smaller than patch_size = overlapping patches)",
    "tissue_fraction": "a patch is kept when at least this share of it is tissue",
    "mask_mpp": "microns per pixel of the tissue-mask image",
    "mask_saturation_threshold": "fixed HSV-saturation threshold of the tissue mask (0-255; null = Otsu)",
    "mask_min_saturation": "the tissue threshold never goes below this (blank glass stays blank)",
    "mask_min_value": "pixels darker than this HSV value are background (scanner margins)",
    "mask_median_kernel": "median-filter size of the saturation image, in mask pixels",
    "mask_close_size": "morphological closing of the mask, in mask pixels",
    "mask_min_tissue_area_um2": "tissue pieces smaller than this (square microns) are dropped",
    "mask_max_hole_area_um2": "holes smaller than this (square microns) are filled (null: all holes)",
    "encoder_name": "patch encoder (builtin-small, or a named foundation model with encoder_checkpoint)",
    "torch_threads": "torch threads while encoding on the CPU (default: num_threads; null: cores minus num_workers)",
    "save_pt": "also write HistGen's <slide_id>.pt feature files",
    "save_thumbnails": "write a thumbnail with the patch grid of each slide",
    "encoder": _DERIVED + "the patch encoder built from encoder_name and encoder_checkpoint",
    # multi-process
    "dist_backend": "torch.distributed backend (nccl on GPUs, gloo on CPUs)",
    "dist_timeout_hours": "timeout of the distributed collectives, in hours",
    # export
    "bundle_name": "name of the exported bundle (the zip's top folder)",
    "code_root": _DERIVED + "folder of the scripts package copied into the zip",
    "meta_file": "the bundle's metadata.json",
    "dist_dir": "folder the zip is written to",
    "docs_exclude": "docs/ sub-folders left out of the zip",
    "model_subdirs": "model_dir sub-folders copied into the zip (glob patterns)",
    # transfer bundles (subtyping, survival)
    "classes": "class names in class-id order (null: the CSV's labels, sorted)",
    "num_folds": "number of cross-validation folds",
    "fold": "train/run only this fold (null: all folds)",
    "val_fraction": "share of each training fold held out for validation",
    "model": "slide model: histgen (HistGen encoder + attention pooling) or abmil",
    "pretrained_encoder": "HistGen encoder weights: auto (the report bundle's model when it fits), a path, or none",
    "encoder_weights": _DERIVED + "the resolved pretrained encoder file (or None)",
    "freeze_encoder": "keep the pretrained encoder's weights fixed",
    "class_weighted": "weight the loss by inverse class frequency",
    "histgen": "HistGen encoder sizes and input_norm (ignored with a pretrained encoder; nested keys below)",
    "pool": "attention-pooling head sizes (nested keys below)",
    "abmil": "ABMIL model sizes and input_norm (nested keys below)",
    "n_bins": "number of discrete survival-time bins of the hazard model",
    "alpha": "weight of the uncensored term in the survival loss",
    "time_unit": "unit of the survival times (plot and table labels)",
    "slides": _DERIVED + "the slide table (ids, labels/outcomes, feature files)",
    "folds": _DERIVED + "the cross-validation folds (read from or written to split_dir)",
    "outputs": _DERIVED + "names of the model's outputs (classes, or hazard bins)",
    "info": _DERIVED + "facts about the run logged with the model and to MLflow",
    "network_def": _DERIVED + "the network definition (siblings' evaluate/inference: built from the fold models)",
    "network": _DERIVED + "the network on device (with the pretrained weights where they apply)",
    "task": "the transfer task object (scripts.transfer.TransferTask: subtyping, survival, grade ...; evaluate: "
            "read from the saved fold models)",
    "loss": _DERIVED + "the training loss (the task's loss over the fold's targets)",
    "key_metric": _DERIVED + "the evaluator's key metric (the task's metric)",
    "run_info": _DERIVED + "facts about the run shared by every task (data, sizes), logged with the model",
    "train_params": _DERIVED + "training parameters logged to MLflow (train.*), with the task's own",
    "registration_tags": _DERIVED + "tags of a registered model version, with the task's own",
    "preprocessing": "transforms applied to each batch before the network (null: none)",
    "postprocessing": "transforms applied to the network's output (null: none)",
}

#: bundle -> key -> description, where the meaning differs from :data:`DESCRIPTIONS`
BUNDLE_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "report": {
        "demo": "options of the embedded SYNTHETIC demo: source (slides or feature_bags), shuffle_pairs (control)",
        "val_metric": "validation metric that selects the best model and drives early stopping (clinical_bleu, "
                      "BLEU_4, CIDEr, diagnosis_accuracy ...)",
        "output_dir": "folder for everything a run writes (extract_features: the feature files)",
        "num_workers": "DataLoader workers (extract_features: cuCIM decode threads or OpenSlide worker processes)",
        "batch_size": "slides per batch (extract_features: patches per encoder batch)",
    },
    "subtyping": {
        "val_metric": "validation metric of model selection: auc, balanced_accuracy, accuracy, f1_macro or loss",
        "experiment_name": "MLflow experiment name",
    },
    "survival": {
        "val_metric": "validation metric of model selection: c_index or loss",
    },
}


def describe(key: str, bundle: str = "report") -> str | None:
    """The description of ``key`` in ``bundle`` (``report``, ``subtyping``, ``survival``), or None."""
    return BUNDLE_DESCRIPTIONS.get(bundle, {}).get(key) or DESCRIPTIONS.get(key)
