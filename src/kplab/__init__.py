"""kplab: facial keypoints, semi-supervised digits and convolution from scratch."""

__version__ = "0.1.0"


def load_model(model_dir):
    """Load a trained face keypoint model (eval mode, `hparams` attached) from a model directory."""
    from kplab.faces.training.model import load_model as _load

    return _load(model_dir)


def __getattr__(name):
    # Heavy parts load lazily so `import kplab` and `kplab --help` stay fast.
    if name == "Predictor":
        from kplab.faces.inference.predict import Predictor

        return Predictor
    raise AttributeError(name)
