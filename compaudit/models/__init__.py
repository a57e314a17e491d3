"""Model runners (torch, onnxruntime) and population specs."""
