"""vitheads: ViT attention-head interpretability on distorted spectrograms."""
