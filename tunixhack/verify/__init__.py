"""Answer checks shared by the generation filter, the GRPO rewards and the evaluation, so the three agree.

Each returns True / False, or None when there is nothing to check against.
"""
