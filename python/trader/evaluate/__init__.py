"""Walk-forward evaluation (`trader evaluate`): folds that train on the past and test on the next unseen
block, several seeds per fold, every baseline, bootstrap confidence intervals (issue 13)."""
