"""idvid: identity-preserving text-to-video generation.

Heavy modules (torch, diffusers, onnxruntime) are imported by the subpackages that need them, never
here, so `import idvid` and `idvid --help` stay fast.
"""

__version__ = "0.1.0"
