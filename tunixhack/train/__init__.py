"""What the train/ scripts share: trace data, the model, rewards, runs, Hugging Face files, decoding.
May import every other folder; nothing in tunixhack imports it. Needs the [train] extra (JAX, Tunix).

`train/*.py` are the commands users run; they import from here.
"""
