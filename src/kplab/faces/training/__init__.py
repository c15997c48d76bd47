"""Learning a face keypoint model: layouts, faces and their readers, framing of annotated photos,
augmentation, the network, the training loop, evaluation, metrics and reports."""
