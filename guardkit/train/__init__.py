"""`guardkit train`: TaskGuard, MultiTaskGuard and JudgeGuard trainers and their model cards (thresholds: `guardkit.calibration`)."""
