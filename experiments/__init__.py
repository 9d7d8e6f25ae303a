"""Training experiments of hgn_pyg (they train models; hours at full size): run from the repository
root as ``python -m experiments.<name>``.

* :mod:`experiments.ablation` -- the ablation of the published recipe on the synthetic set.
* :mod:`experiments.detector_robustness` -- detector-robust training and its evaluation under
  detector-like input, missing keypoints and COCO-17 input.
"""
