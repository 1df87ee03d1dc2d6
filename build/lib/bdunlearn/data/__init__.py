"""Datasets as device-resident uint8 tensors, their splits, and captioned views for contrastive training."""
