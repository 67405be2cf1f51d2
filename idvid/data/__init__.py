"""Data: curation of raw videos into identity-video training sets (`idvid.data.curate`).

Importing this package is cheap; the curation stages import their models (face analysers, OCR,
optical flow) only when a run needs them.
"""
