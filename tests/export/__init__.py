"""Tests of deployment: ONNX export and `surgery bench`, on a planned student and on a finished run."""
