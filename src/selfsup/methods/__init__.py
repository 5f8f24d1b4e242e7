"""Self-supervised methods; importing this package registers the built-in ones."""
from .base import Method, OptimizerDefaults, ParameterRoles, TrainingContext, methods, register_method
from . import simclr, moco, byol, simsiam, barlow_twins, vicreg  # noqa: F401
from . import ts2vec, masked_reconstruction  # noqa: F401
from . import scarf, vime, denoising_autoencoder  # noqa: F401
from . import dino, mocov3, nnclr, swav, deepcluster_v2, sela  # noqa: F401
from . import mae, ijepa, data2vec, rotnet, jigsaw, relative_position, npid  # noqa: F401
from . import simcse, tsdae, declutr, mlm  # noqa: F401
from . import graphcl, infograph, grace, dgi, bgrl, graphmae  # noqa: F401
from . import cpc, byol_a, cola, hubert_lite  # noqa: F401
from . import dcl, tico, mmcr, directclr  # noqa: F401
from . import wmse, fastsiam, emp_ssl, lejepa  # noqa: F401
from . import msn, smog  # noqa: F401
from . import dinov2, vicregl  # noqa: F401

__all__ = ["Method", "OptimizerDefaults", "ParameterRoles", "TrainingContext", "methods", "register_method"]
