"""panoptic_st: self-trained panoptic segmentation."""
__version__ = "0.1.0"
