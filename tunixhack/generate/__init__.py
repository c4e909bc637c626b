"""Running a recipe over a dataset: the CLI, the Recipe contract, the engine, resume, progress, the summary.
May import teachers/, verify/ and the shared modules (errors, student, tokens); never dataset/ or train/.
"""
