"""Using a trained face keypoint model: face detection, `Predictor` for photos, folders and arrays,
video with smoothing, ONNX export and speed measurement."""
