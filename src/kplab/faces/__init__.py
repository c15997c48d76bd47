"""Facial keypoints. `training/` learns a model (layouts, data readers, augmentation, the network, the
training loop, evaluation and its reports); `inference/` uses a trained one (face detection, `Predictor`,
video, smoothing, ONNX export, speed). Inference imports training, never the reverse. The command
modules here only wire options to those two."""
