"""The reference HMR regressor trained on the shared harness (``humanbench train hmr``).

A small ResNet on person crops, an iterative-error-feedback regressor of SMPL parameters (6D
rotations) and a weak-perspective camera, supervised with SMPL parameters, 3D joints through
the body model and 2D keypoints. See ``docs/training.md``.
"""
