"""Maintainer tooling for the course: build steps, checks and reference sweeps.

Run from the repository root, e.g. `python -m tools budget`. Not part of the installed
resnet_nb package: students never need it.
"""
