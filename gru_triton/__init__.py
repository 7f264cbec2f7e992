"""gru-triton: fused Triton GPU kernels for the GRU layer, a drop-in for ``torch.nn.GRU``.

Importing it compiles nothing and patches nothing.
"""

from .convert import from_keras, replace_gru, to_keras
from .dispatch import get_backend, set_backend
from .module import GRU, GRUCell
from .reference import gru_layer_reference

__all__ = ["GRU", "GRUCell", "from_keras", "get_backend", "gru_layer_reference", "replace_gru",
           "set_backend", "to_keras"]
__version__ = "0.1.0"
