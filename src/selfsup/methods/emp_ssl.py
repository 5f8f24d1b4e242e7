"""EMP-SSL: Tong et al. 2023, "EMP-SSL: Towards Self-Supervised Learning in One Training Epoch" (arXiv:2304.03977).

Extreme multi-patch: every image is cut into n random patches (n = 20 in the paper's headline runs, 200 in others),
all embedded on the unit sphere. Each patch's embeddings over the batch keep a high total coding rate,
R(Z) = 1/2 logdet(I + d / (b eps) Z^T Z) for Z [b, d], and each patch's embedding is pulled towards the mean of its
image's patch embeddings:

    loss = -1/n sum_i R(Z_i) - lambda 1/n sum_i mean_b cos(z_{i,b}, zbar_b),  zbar_b = 1/n sum_i z_{i,b},

with eps = 0.2 (the paper writes eps^2 in R; its code, and this, use eps unsquared) and lambda = 200. The head is the
official one: Linear-BN-ReLU to 4096, Linear-BN-ReLU, Linear to 1024, then L2 normalisation; LARS with lr 0.3 at the
paper's batch of 100 (unscaled), weight decay 1e-4.

Departures, stated:
- The patches are selfsup's `asymmetric` views (VICReg's and BYOL's two augmentation distributions, alternating over
  the patches; the paper's patches all take one close to the second, blur and solarisation with probability 0.1) at
  the training resolution: random resized crops of 8-100% of the area with a free aspect ratio, where the paper
  takes fixed square crops of 25% of the area (`--augment crop_scale=[0.25,0.25] crop_ratio=[1,1]` on images).
- `num_patches` = 20 is the paper's smaller setting; every patch costs a forward pass, so on CPUs a few (e.g.
  `--method-option num_patches=4`) keep a step affordable at the price of the paper's one-epoch convergence.
- R(Z) is computed with the b x b Gram matrix when the batch is smaller than d (det(I_d + c Z^T Z) = det(I_b + c Z
  Z^T)): the same value, a smaller matrix.
- LARS's trust coefficient is selfsup's 0.001 (the official code's is 0.005).
- Evaluation embeds the whole input with the encoder, where the paper averages the embeddings of its patches.
- Under torchrun the coding rate is computed over every process's batch (gathered), as on the paper's single device.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, mlp, register_method
from .numerics import full_precision


@full_precision
def total_coding_rate(z: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """R(Z) = 1/2 logdet(I + d / (b eps) Z^T Z) of the embeddings `z` [b, d]."""
    b, d = z.shape
    gram = z @ z.T if b < d else z.T @ z  # the smaller of the two: same determinant (Sylvester)
    eye = torch.eye(gram.shape[0], dtype=z.dtype, device=z.device)
    chol = torch.linalg.cholesky(eye + d / (b * eps) * gram)
    return chol.diagonal().log().sum()  # 1/2 logdet = sum of the log-diagonal of the Cholesky factor


@full_precision
def emp_ssl_loss(patches: list[torch.Tensor], eps: float = 0.2, inv_weight: float = 200.0) -> torch.Tensor:
    """-mean_i R(Z_i) - lambda mean_i mean_b cos(z_{i,b}, zbar_b) over the patch embeddings `patches` (one [B, d] tensor
    per patch, row b the same image in each)."""
    z = torch.stack(patches)
    mean = z.mean(dim=0)
    coding_rate = torch.stack([total_coding_rate(p, eps) for p in patches]).mean()
    invariance = F.cosine_similarity(z, mean.unsqueeze(0), dim=-1).mean()
    return -coding_rate - inv_weight * invariance


@register_method("emp_ssl", "Many patches per image: total coding rate of each patch's embeddings plus invariance "
                 "to the mean patch embedding.", "Tong et al. 2023, arXiv:2304.03977")
class EMPSSL(Method):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-4, lr_scaling="none")
    requested_views = ViewRequest("asymmetric", global_views=20)

    def __init__(self, encoder, proj_hidden_dim: int = 4096, proj_dim: int = 1024, num_patches: int = 20,
                 tcr_eps: float = 0.2, inv_weight: float = 200.0) -> None:
        super().__init__(encoder)
        check_option("emp_ssl", "num_patches", num_patches, 2, low_open=False)
        check_option("emp_ssl", "tcr_eps", tcr_eps, 0.0)
        check_option("emp_ssl", "inv_weight", inv_weight, 0.0, low_open=False)
        self.num_patches, self.tcr_eps, self.inv_weight = int(num_patches), tcr_eps, inv_weight
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, global_views=self.num_patches)

    def loss_on_views(self, views, step):
        h = self.encode(views.global_views)
        z = F.normalize(self.projector(torch.cat(h)), dim=1).chunk(len(h))  # one head pass, as the official code
        if self.distributed:  # the coding rate of the global batch
            z = tuple(self.gather(p) for p in z)
        return emp_ssl_loss(list(z), self.tcr_eps, self.inv_weight), {}
