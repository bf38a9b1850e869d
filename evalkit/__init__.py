"""evalkit: which quantized GGUF build of a language model should you run?"""

__version__ = "0.1.0"
