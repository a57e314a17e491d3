"""compaudit: audit compressed neural networks against their reference."""

__version__ = "0.1.0"
