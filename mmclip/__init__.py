"""mmclip: medical vision-language pre-training on chest X-rays.

Contrastive image–text learning with attention-guided masked image modelling
(AttMIM) and entity-masked language modelling (EntMLM), learning from paired and
unpaired data. The operators live in :mod:`mmclip.ops`.
"""

from . import ops

__version__ = "0.1.0"

__all__ = ["__version__", "ops"]
