"""Facial keypoints: data, augmentation, models, training, metrics, photos and export."""
