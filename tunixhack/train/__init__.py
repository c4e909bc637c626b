"""What the train/ scripts share: trace data, the model, rewards, runs, Hugging Face files, decoding.

Needs the [train] extra (JAX, Tunix). `train/*.py` are the commands users run; they import from here.
"""
