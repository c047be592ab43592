"""Classifiers h: the protocol MLP, scikit-learn (.skops) and ONNX models in original units."""
