"""`guardkit train`: TaskGuard, MultiTaskGuard and JudgeGuard trainers (thresholds: `guardkit.calibration`; model cards: `guardkit.guard_card`)."""
