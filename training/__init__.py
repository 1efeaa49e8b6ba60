"""Retraining: turn labelled media into face crops, train, evaluate and export the detector."""

# the detector package sets TensorFlow's log level on import; training modules import TensorFlow (through Keras)
# before anything of detector, so it is imported first here
import detector  # noqa: F401
