"""`guardkit train`: TaskGuard, MultiTaskGuard and JudgeGuard trainers, threshold calibration, model cards."""
