"""The shipped motion model's figures, recomputed: recognition accuracy of generated sequences by a
classifier trained on held-out prior sequences, diversity between seeds, mean jerk and loop closure,
each against the prior itself (the baseline, measured in the same process)."""
from __future__ import annotations

import json


def main() -> None:
    import torch

    from video_gen.motion import load_motion_model
    from video_gen.train_motion import evaluate

    torch.set_num_threads(1)
    figs = evaluate(load_motion_model(), seed=1000, n_classifier=2000, n_eval=400, takes=6, groups_per_class=3)
    print(json.dumps(figs, indent=1))
    print(f"accuracy generated {figs['classifier_accuracy_generated']:.3f} (prior held-out "
          f"{figs['classifier_accuracy_prior_heldout']:.3f}); diversity ratio gen/prior "
          f"{figs['diversity_px_generated'] / figs['diversity_px_prior']:.2f}; jerk ratio gen/prior "
          f"{figs['jerk_px_generated'] / figs['jerk_px_prior']:.2f}; loop closure max {figs['loop_closure_px_max']} px")


if __name__ == "__main__":
    main()
