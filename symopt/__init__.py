"""symopt: optimizers written once as SymPy update equations, checked, and generated into code."""

__version__ = "0.1.0"
