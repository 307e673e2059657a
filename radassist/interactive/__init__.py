"""Box-prompted interactive segmentation (LiteMedSAM): an annotator draws a box, the model returns the mask."""
