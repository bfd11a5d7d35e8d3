"""Pure tensor helpers shared by the branches, the panoptic merge and prediction: geometry (affine warps,
rotations), image normalisation, class probabilities and segment maps. Nothing here imports a branch."""
