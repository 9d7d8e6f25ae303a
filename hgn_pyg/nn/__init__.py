"""Graph layers of HGN, usable in any PyTorch Geometric model (docs/published_model.md §2).

* :class:`SemGraphConv` -- semantic graph convolution (one learnable logit per edge),
  a ``MessagePassing`` layer with dense / sparse / scatter kernels (:func:`choose_mode`).
* :class:`GraphNonLocal` -- graph non-local block in separable form.
* :class:`GraphConvBlock`, :class:`ResidualGraphConvBlock` -- conv + BN + ReLU blocks.
* :class:`NodeTransfer` -- learned dense node mixing between scales ("ChannelTrans").
* :class:`HierarchyPoolFusion`, :class:`JointPoolFusion` -- scatter pooling/unpooling between
  scales (mesh hierarchy levels, mesh <-> skeleton) followed by a linear map.
"""
from .blocks import GraphConvBlock, ResidualGraphConvBlock
from .fusion import HierarchyPoolFusion, JointPoolFusion
from .non_local import GraphNonLocal
from .sem_graph_conv import SemGraphConv, choose_mode
from .transfer import NodeTransfer

__all__ = [
    "SemGraphConv",
    "choose_mode",
    "GraphNonLocal",
    "GraphConvBlock",
    "ResidualGraphConvBlock",
    "NodeTransfer",
    "HierarchyPoolFusion",
    "JointPoolFusion",
]
