"""`kplab serve`: a trained model as a local HTTP API and a browser page (photo or webcam -> keypoints)."""
